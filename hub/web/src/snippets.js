// Copyable snippets for using an extension from the hub: Sluice's CLI, an Envoy http_filters
// entry (Sluice pulls oci:// code itself) and an Istio WasmPlugin. Pure functions of the
// extension's API data, so they are easy to read and to test.

/** The image reference to use: the latest tag, else the newest version's digest. */
export function imageRef(ext, version) {
  const repo = `${ext.registry}/${ext.name}`;
  if (ext.latest_tag) return `${repo}:${ext.latest_tag}`;
  if (version && version.digest) return `${repo}@${version.digest}`;
  return repo;
}

/** YAML double-quoted scalar: JSON's string syntax is valid YAML. */
const q = (s) => JSON.stringify(String(s));

/** The plugin name: the repository's last path component. */
export function pluginName(ext) {
  return ext.name.split('/').pop();
}

/** A Kubernetes object name (DNS-1123 label) from a repository name. */
function k8sName(s) {
  const name = s.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 63);
  return name || 'wasm-plugin';
}

export function sluicePull(ref, plainHttp) {
  return `sluice ext pull ${ref}${plainHttp ? ' --plain-http' : ''}`;
}

export function sluiceDeploy(ref, plainHttp) {
  return `sluice ext deploy ${ref} --to http://127.0.0.1:9901${plainHttp ? ' --plain-http' : ''}`;
}

export function envoyFilter(ext, version, ref) {
  const rootId = version && version.root_ids && version.root_ids[0];
  const lines = [
    '# Goes in an HttpConnectionManager, before envoy.filters.http.router. Sluice pulls',
    '# oci:// code itself (Envoy does not: use `sluice ext deploy REF --envoy` there).',
    'http_filters:',
    '- name: envoy.filters.http.wasm',
    '  typed_config:',
    '    "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm',
    '    config:',
    `      name: ${q(pluginName(ext))}`,
  ];
  if (rootId) lines.push(`      root_id: ${q(rootId)}`);
  lines.push(
    '      configuration:',
    '        "@type": type.googleapis.com/google.protobuf.StringValue',
    '        value: ""',
    '      vm_config:',
    '        runtime: envoy.wasm.runtime.v8',
    '        code:',
    '          remote:',
    '            http_uri:',
    `              uri: ${q(`oci://${ref}`)}`,
    '              timeout: 10s',
  );
  if (version && version.wasm_digest && version.wasm_digest.startsWith('sha256:')) {
    lines.push(`            # sha256: ${version.wasm_digest.slice(7)}  # pins this module (optional)`);
  }
  return lines.join('\n');
}

export function istioPlugin(ext, version, ref) {
  const rootId = version && version.root_ids && version.root_ids[0];
  const lines = [
    'apiVersion: extensions.istio.io/v1alpha1',
    'kind: WasmPlugin',
    'metadata:',
    `  name: ${k8sName(pluginName(ext))}`,
    '  namespace: istio-system',
    'spec:',
    `  url: ${q(`oci://${ref}`)}`,
  ];
  if (rootId) lines.push(`  pluginName: ${q(rootId)}`);
  lines.push(
    '  phase: AUTHZ  # AUTHN, AUTHZ or STATS',
    '  failStrategy: FAIL_CLOSE',
    '  pluginConfig: {}',
  );
  return lines.join('\n');
}
