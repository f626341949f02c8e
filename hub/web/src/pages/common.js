// Pieces several pages share: extension cards and the "log in first" notice.
import { h, badge, chips, formatBytes, formatCount, time } from '../dom.js';
import { repoPath } from '../api.js';

/** A search result / repository summary as a card linking to its page. */
export function extensionCard(ext) {
  const href = `/extensions/${repoPath(ext.name)}`;
  return h('li', { class: 'card ext-card', 'data-name': ext.name },
    h('div', { class: 'card-head' },
      h('h3', { class: 'card-title' }, h('a', { href }, ext.name)),
      ext.private ? badge('private', 'private') : null,
      ext.missing_imports && ext.missing_imports.length ? badge('imports missing', 'warning') : null),
    h('p', { class: ext.description ? 'card-desc' : 'card-desc muted' }, ext.description || 'No description.'),
    h('dl', { class: 'card-meta' },
      meta('Latest', ext.latest_tag ? h('code', null, ext.latest_tag) : h('span', { class: 'muted' }, 'untagged')),
      meta('ABI', chips(ext.abi_versions, 'abi')),
      meta('Downloads', formatCount(ext.downloads)),
      meta('Size', formatBytes(ext.wasm_size)),
      ext.license ? meta('License', ext.license) : null,
      meta('Updated', time(ext.updated))));
}

function meta(label, value) {
  return h('div', null, h('dt', null, label), h('dd', null, value));
}

export function extensionList(list, emptyText) {
  if (!list || list.length === 0) return h('p', { class: 'empty muted' }, emptyText);
  return h('ul', { class: 'cards' }, list.map(extensionCard));
}

/** For pages that need a login: a notice with a link back here after logging in. */
export function needLogin(what) {
  const next = encodeURIComponent(location.pathname + location.search);
  return {
    title: 'Log in',
    node: h('section', { class: 'narrow' },
      h('h1', null, 'Log in first'),
      h('p', null, `${what} needs an access token. `, h('a', { href: `/login?next=${next}` }, 'Log in with a token'), '.')),
  };
}
