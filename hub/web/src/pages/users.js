// "/users" (administrators): every account, and adding one (its first token shown once).
import { h, field, asyncForm, table, badge, time } from '../dom.js';
import { api } from '../api.js';
import { session } from '../app.js';
import { needLogin } from './common.js';
import { newSecret } from './tokens.js';

export async function usersPage() {
  if (!session.user) return needLogin('Managing users');
  const listSlot = h('div', { 'data-testid': 'user-list' });
  const created = h('div', { 'aria-live': 'polite' });
  async function refresh() {
    const data = await api('/users');
    const users = data.users || [];
    listSlot.replaceChildren(users.length
      ? table('Users', ['User', 'Role', 'Created'], users.map((u) => [u.name, u.admin ? badge('administrator', 'admin') : 'user', time(u.created)]))
      : h('p', { class: 'muted' }, 'No users.'));
  }
  await refresh(); // a 403 for non-administrators shows as the page's error
  const form = asyncForm(h('form', { class: 'card form', 'aria-labelledby': 'new-user-h' },
    h('h2', { id: 'new-user-h' }, 'Add a user'),
    h('div', { class: 'form-row' },
      field('Name', h('input', { name: 'name', required: true, autocomplete: 'off', pattern: '[a-z0-9][a-z0-9._\\-]*' })),
      h('div', { class: 'field checkbox' }, h('label', null, h('input', { type: 'checkbox', name: 'admin' }), ' Administrator'))),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'btn primary' }, 'Add user'))),
  async ({ name, admin }, f) => {
    const made = await api('/users', { method: 'POST', body: { name: name.trim(), admin } });
    created.replaceChildren(newSecret(`Token of ${made.name}`, made.token,
      `Give it to ${made.name} over a safe channel. It expires ${made.expires ? new Date(made.expires * 1000).toISOString().slice(0, 10) : 'never'}.`));
    f.reset();
    await refresh();
  });
  return {
    title: 'Users',
    node: h('section', null, h('h1', null, 'Users'), created, form, h('h2', null, 'All users'), listSlot),
  };
}
