// "/" : search and browse. The query lives in the URL (?q=&offset=) so results can be linked;
// typing searches as you go (debounced) without re-rendering the search box.
import { h, loading, errorBox } from '../dom.js';
import { api } from '../api.js';
import { extensionList } from './common.js';

const LIMIT = 20;

export async function searchPage(ctx) {
  const q = ctx.query.get('q') || '';
  const offset = Math.max(0, Number.parseInt(ctx.query.get('offset') || '0', 10) || 0);
  const results = h('div', { class: 'results', id: 'results', 'aria-live': 'polite' });
  const input = h('input', {
    type: 'search',
    name: 'q',
    value: q,
    placeholder: 'Search by name, description, ABI, root id…',
    'aria-label': 'Search extensions',
    autocomplete: 'off',
    spellcheck: 'false',
  });

  let seq = 0;
  async function show(query, off) {
    const mine = ++seq;
    results.replaceChildren(loading('Searching'));
    try {
      const data = await api(`/search?q=${encodeURIComponent(query)}&limit=${LIMIT}&offset=${off}`);
      if (mine !== seq || !ctx.isCurrent()) return;
      results.replaceChildren(renderResults(data, query));
    } catch (err) {
      if (mine !== seq) return;
      results.replaceChildren(errorBox(err, 'Search failed'));
    }
  }

  let timer;
  input.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      const value = input.value.trim();
      history.replaceState(null, '', value ? `/?q=${encodeURIComponent(value)}` : '/');
      show(value, 0);
    }, 250);
  });
  const form = h('form', {
    role: 'search',
    class: 'search-form',
    onsubmit: (event) => {
      event.preventDefault();
      clearTimeout(timer);
      const value = input.value.trim();
      history.replaceState(null, '', value ? `/?q=${encodeURIComponent(value)}` : '/');
      show(value, 0);
    },
  }, input, h('button', { type: 'submit', class: 'btn primary' }, 'Search'));

  await show(q, offset);
  return {
    title: q ? `Search: ${q}` : 'Extensions',
    node: h('section', null,
      h('div', { class: 'hero' },
        h('h1', null, 'Proxy-Wasm extensions'),
        h('p', { class: 'muted' }, 'Filters for Sluice, Envoy and Istio, stored as OCI images. Pull them with ',
          h('code', null, 'sluice ext pull'), ' or reference them as ', h('code', null, 'oci://'), ' code.'),
        form),
      results),
  };
}

function renderResults(data, query) {
  const total = data.total ?? 0;
  const list = data.results || [];
  const from = list.length ? data.offset + 1 : 0;
  const summary = query
    ? `${total} result${total === 1 ? '' : 's'} for “${query}”`
    : `${total} extension${total === 1 ? '' : 's'}`;
  const pager = [];
  if (data.offset > 0) {
    pager.push(h('a', { class: 'btn small', href: pageHref(query, Math.max(0, data.offset - LIMIT)), rel: 'prev' }, '← Previous'));
  }
  if (data.offset + list.length < total) {
    pager.push(h('a', { class: 'btn small', href: pageHref(query, data.offset + list.length), rel: 'next' }, 'Next →'));
  }
  return h('div', null,
    h('p', { class: 'result-count', 'data-testid': 'result-count' }, summary,
      list.length && total > list.length ? h('span', { class: 'muted' }, ` (showing ${from}–${data.offset + list.length})`) : null),
    extensionList(list, query ? 'Nothing matches. Try another word.' : 'No extensions yet. Push one with sluice ext push.'),
    pager.length ? h('nav', { class: 'pager', 'aria-label': 'Result pages' }, pager) : null);
}

function pageHref(query, offset) {
  const params = new URLSearchParams();
  if (query) params.set('q', query);
  if (offset) params.set('offset', String(offset));
  const s = params.toString();
  return s ? `/?${s}` : '/';
}
