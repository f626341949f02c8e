// "/extensions/NS/NAME" : one extension: what it is, its README, how to use it, its versions.
import {
  h, badge, chips, facts, formatBytes, formatCount, time, shortDigest, table, snippet,
  externalLink, errorBox, notice,
} from '../dom.js';
import { api, repoPath, ApiError } from '../api.js';
import { renderMarkdown } from '../markdown.js';
import { imageRef, sluicePull, sluiceDeploy, envoyFilter, istioPlugin } from '../snippets.js';

export async function extensionPage(ctx) {
  const [ns, name] = ctx.params;
  const full = `${ns}/${name}`;
  let ext;
  try {
    ext = await api(`/extensions/${repoPath(full)}`);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      return {
        title: 'Not found',
        node: h('section', { class: 'narrow' },
          h('h1', null, full),
          notice(`${err.message}. It may not exist, or be private: log in as a member of ${ns} to see private extensions.`, 'error'),
          h('p', null, h('a', { href: '/' }, 'Back to the extensions'))),
      };
    }
    throw err;
  }
  return { title: ext.name, node: render(ext, ctx) };
}

/** The version the latest tag names (else the newest one). */
function latestVersion(ext) {
  const versions = ext.versions || [];
  const tag = (ext.tags || []).find((t) => t.tag === ext.latest_tag);
  return (tag && versions.find((v) => v.digest === tag.digest)) ||
    [...versions].sort((a, b) => (b.created || 0) - (a.created || 0))[0] || null;
}

function render(ext, ctx) {
  const latest = latestVersion(ext);
  const ref = imageRef(ext, latest);
  // A hub served over plain HTTP needs --plain-http in the CLI and an insecure_registries entry.
  const plainHttp = location.protocol === 'http:';
  const source = externalLink(ext.source);

  const header = h('header', { class: 'ext-header' },
    h('p', { class: 'crumbs' }, h('a', { href: '/' }, 'Extensions'), ' / ', ext.namespace),
    h('div', { class: 'title-row' },
      h('h1', null, ext.name),
      ext.private ? badge('private', 'private') : badge('public', 'public'),
      ext.language ? badge(ext.language) : null),
    h('p', { class: ext.description ? 'lead' : 'lead muted', 'data-testid': 'description' },
      ext.description || 'No description.'),
    ext.can_push ? visibilityToggle(ext, ctx) : null);

  const side = h('aside', { class: 'ext-side', 'aria-label': 'About this extension' },
    facts([
      ['Latest tag', ext.latest_tag ? h('code', null, ext.latest_tag) : h('span', { class: 'muted' }, 'none')],
      ['Downloads', h('span', { 'data-testid': 'downloads' }, formatCount(ext.downloads))],
      ['Module size', formatBytes(ext.wasm_size)],
      ['ABI versions', chips(ext.abi_versions, 'abi')],
      ['Root ids', chips(ext.root_ids)],
      ['License', ext.license || null],
      ['Source', ext.source ? source : null],
      ['Created', time(ext.created)],
      ['Updated', time(ext.updated)],
    ]));

  const readme = h('section', { class: 'readme-section', 'aria-labelledby': 'readme-h' },
    h('h2', { id: 'readme-h' }, 'README'),
    ext.readme
      ? h('article', { class: 'readme', 'data-testid': 'readme' }, renderMarkdown(ext.readme))
      : h('p', { class: 'muted' }, 'This extension has no README (the image annotation io.sluice.extension.readme).'));

  const usage = h('section', { class: 'usage', 'aria-labelledby': 'usage-h' },
    h('h2', { id: 'usage-h' }, 'Use it'),
    h('p', { class: 'muted small' }, 'Reference: ', h('code', { 'data-testid': 'ref' }, ref)),
    snippet('Pull with the Sluice CLI', sluicePull(ref, plainHttp), { id: 'pull' }),
    snippet('Deploy into a running Sluice', sluiceDeploy(ref, plainHttp), {
      id: 'deploy',
      note: plainHttp ? `This hub speaks plain HTTP: the proxy needs ${ext.registry} in sluice.oci.insecure_registries.` : null,
    }),
    snippet('Envoy configuration (Sluice)', envoyFilter(ext, latest, ref), { id: 'envoy' }),
    snippet('Istio WasmPlugin', istioPlugin(ext, latest, ref), { id: 'istio' }));

  return h('div', { class: 'ext-page' },
    header,
    h('div', { class: 'ext-grid' },
      h('div', { class: 'ext-main' }, readme, usage, imports(latest), versions(ext)),
      side));
}

function visibilityToggle(ext, ctx) {
  const status = h('span', { class: 'muted small', 'aria-live': 'polite' });
  const button = h('button', {
    type: 'button',
    class: 'btn small',
    'aria-pressed': ext.private ? 'true' : 'false',
    'data-testid': 'visibility',
    onclick: async () => {
      button.disabled = true;
      status.textContent = 'Saving…';
      try {
        await api(`/extensions/${repoPath(ext.name)}`, { method: 'PATCH', body: { private: !ext.private } });
        ctx.reload();
      } catch (err) {
        button.disabled = false;
        status.replaceChildren(errorBox(err, 'Could not change the visibility'));
      }
    },
  }, ext.private ? 'Make public' : 'Make private');
  return h('div', { class: 'maintainer-bar' },
    h('span', null, 'You maintain this extension. '),
    ext.private ? 'Only members of ' : 'Anyone can see and pull it. ',
    ext.private ? h('strong', null, ext.namespace) : null,
    ext.private ? ' can see and pull it. ' : null,
    button, status);
}

function imports(version) {
  if (!version) return null;
  // missing_imports name "module.function" (env.proxy_foo); the host and WASI lists name the
  // function alone: compare on the function name.
  const missing = new Set(version.missing_imports || []);
  const bare = (m) => (m.includes('.') ? m.slice(m.indexOf('.') + 1) : m);
  const missingNames = new Set([...missing].map(bare));
  const list = (names, kind) => {
    if (!names || names.length === 0) return h('p', { class: 'muted' }, 'None.');
    return h('ul', { class: 'chips' }, names.map((n) => missingNames.has(n) || missing.has(n)
      ? h('li', { class: `chip ${kind} missing`, title: 'not offered by Sluice' }, n, h('span', { class: 'chip-note' }, ' — not offered by Sluice'))
      : h('li', { class: `chip ${kind}` }, n)));
  };
  // Imports neither list names (other modules' functions) still show, all missing.
  const listed = new Set([...(version.host_functions || []), ...(version.wasi_functions || [])]);
  const other = [...missing].filter((n) => !listed.has(n) && !listed.has(bare(n)));
  return h('section', { class: 'imports', 'aria-labelledby': 'imports-h' },
    h('h2', { id: 'imports-h' }, 'Host functions'),
    h('p', { class: 'muted small' }, 'What the module of ', shortDigest(version.digest),
      version.tags && version.tags.length ? ` (${version.tags.join(', ')})` : '', ' imports from its host.'),
    missing.size
      ? notice(`This module imports ${missing.size} function${missing.size === 1 ? '' : 's'} Sluice does not offer: it will not load in Sluice.`, 'warning')
      : null,
    h('h3', null, 'Proxy-Wasm'),
    h('div', { 'data-testid': 'host-functions' }, list(version.host_functions, 'fn')),
    h('h3', null, 'WASI'),
    h('div', { 'data-testid': 'wasi-functions' }, list(version.wasi_functions, 'fn')),
    other.length ? [h('h3', null, 'Other imports'), h('div', { 'data-testid': 'missing-imports' }, list(other, 'fn'))] : null);
}

function versions(ext) {
  const tagRows = (ext.tags || []).map((t) => [h('code', null, t.tag), shortDigest(t.digest), time(t.updated)]);
  const versionRows = [...(ext.versions || [])]
    .sort((a, b) => (b.created || 0) - (a.created || 0))
    .map((v) => [
      shortDigest(v.digest),
      v.tags && v.tags.length ? chips(v.tags, 'tag') : h('span', { class: 'muted' }, 'untagged'),
      time(v.created),
      chips(v.abi_versions, 'abi'),
      chips(v.root_ids),
      formatBytes(v.wasm_size),
      v.variant || '—',
      v.pushed_by || '—',
    ]);
  return h('section', { class: 'versions', 'aria-labelledby': 'versions-h' },
    h('h2', { id: 'versions-h' }, 'Tags and versions'),
    h('h3', null, 'Tags'),
    tagRows.length ? table('Tags', ['Tag', 'Digest', 'Updated'], tagRows, { 'data-testid': 'tags' })
      : h('p', { class: 'muted' }, 'No tags.'),
    h('h3', null, 'Versions'),
    table('Versions', ['Digest', 'Tags', 'Created', 'ABI', 'Root ids', 'Size', 'Variant', 'Pushed by'],
      versionRows, { 'data-testid': 'versions' }));
}
