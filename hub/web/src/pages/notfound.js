import { h } from '../dom.js';

export async function notFoundPage() {
  return {
    title: 'Not found',
    node: h('section', { class: 'narrow' },
      h('h1', null, 'Page not found'),
      h('p', null, 'There is no page at ', h('code', null, location.pathname), '. ', h('a', { href: '/' }, 'Browse extensions'), '.')),
  };
}
