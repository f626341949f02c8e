// "/account" : who you are, your organisations, and making a new organisation.
import { h, field, asyncForm, facts, badge, table } from '../dom.js';
import { api } from '../api.js';
import { session, refreshUser, navigate } from '../app.js';
import { needLogin } from './common.js';

export async function accountPage() {
  if (!session.user) return needLogin('Your account page');
  await refreshUser(); // roles may have changed since the login
  const user = session.user;
  if (!user) return needLogin('Your account page');
  const orgs = user.orgs || [];
  const form = asyncForm(h('form', { class: 'card form', 'aria-labelledby': 'new-org-h' },
    h('h2', { id: 'new-org-h' }, 'New organisation'),
    h('p', { class: 'muted small' }, 'An organisation is a namespace several people push to. You become its owner.'),
    h('div', { class: 'form-row' },
      field('Name', h('input', { name: 'name', required: true, pattern: '[a-z0-9][a-z0-9._\\-]*', placeholder: 'acme', autocomplete: 'off' }),
        'Lower-case letters, digits, ".", "_" and "-".')),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'btn primary' }, 'Create organisation'))),
  async ({ name }) => {
    const org = name.trim();
    await api('/orgs', { method: 'POST', body: { name: org } });
    await refreshUser();
    navigate(`/orgs/${encodeURIComponent(org)}`);
  });
  return {
    title: 'Account',
    node: h('section', null,
      h('h1', null, user.name),
      facts([
        ['Role', user.admin ? badge('administrator', 'admin') : 'user'],
        ['This token', badge(user.token_scope, `scope-${user.token_scope}`)],
        ['Your namespace', h('a', { href: `/?q=${encodeURIComponent(user.name + '/')}` }, user.name + '/…')],
      ]),
      h('p', null, h('a', { href: '/tokens' }, 'Manage your access tokens'), user.admin ? [' · ', h('a', { href: '/users' }, 'Manage users')] : null,
        ' · ', h('a', { href: `/audit?repository=${encodeURIComponent(user.name)}` }, 'Audit log of your namespace')),
      h('h2', null, 'Organisations'),
      orgs.length
        ? table('Your organisations', ['Organisation', 'Your role'],
          orgs.map((o) => [h('a', { href: `/orgs/${encodeURIComponent(o.name)}` }, o.name), badge(o.role, `role-${o.role}`)]))
        : h('p', { class: 'muted' }, 'You are in no organisation.'),
      form),
  };
}
