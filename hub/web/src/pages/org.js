// "/orgs/ORG" : an organisation's members and extensions; owners add, remove and re-role members.
import { h, field, asyncForm, table, badge, confirmButton, errorBox, notice } from '../dom.js';
import { api, ApiError } from '../api.js';
import { session } from '../app.js';
import { extensionList } from './common.js';

const ROLES = ['owner', 'maintainer', 'reader'];

export async function orgPage(ctx) {
  const [orgName] = ctx.params;
  let org;
  try {
    org = await api(`/orgs/${encodeURIComponent(orgName)}`);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      return { title: 'Not found', node: h('section', { class: 'narrow' }, h('h1', null, orgName), notice(err.message, 'error')) };
    }
    throw err;
  }
  const owner = org.your_role === 'owner';
  const membersSlot = h('div', { 'data-testid': 'members' }, members(org, owner, ctx));
  const addForm = owner ? asyncForm(h('form', { class: 'card form', 'aria-labelledby': 'add-member-h' },
    h('h2', { id: 'add-member-h' }, 'Add a member'),
    h('div', { class: 'form-row' },
      field('User', h('input', { name: 'user', required: true, autocomplete: 'off', placeholder: 'user name' })),
      field('Role', roleSelect('maintainer', { name: 'role' }))),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'btn primary' }, 'Add member'))),
  async ({ user, role }) => {
    await api(`/orgs/${encodeURIComponent(org.name)}/members/${encodeURIComponent(user.trim())}`, { method: 'PUT', body: { role } });
    ctx.reload();
  }) : null;

  return {
    title: org.name,
    node: h('section', null,
      h('p', { class: 'crumbs' }, 'Organisation'),
      h('div', { class: 'title-row' }, h('h1', null, org.name),
        org.your_role ? badge(`you: ${org.your_role}`, `role-${org.your_role}`) : null),
      owner || session.user?.admin
        ? h('p', null, h('a', { href: `/audit?repository=${encodeURIComponent(org.name)}` }, 'Audit log of this organisation'))
        : null,
      h('h2', null, 'Members'),
      membersSlot,
      addForm,
      h('h2', null, 'Extensions'),
      extensionList(org.repositories, 'No extensions yet.')),
  };
}

function roleSelect(current, attrs = {}) {
  return h('select', attrs, ROLES.map((r) => h('option', { value: r, selected: r === current }, r)));
}

function members(org, owner, ctx) {
  const list = org.members || [];
  if (list.length === 0) {
    // The hub tells who is in an organisation to its members only.
    return h('p', { class: 'muted' }, org.your_role ? 'No members.' : 'Only members of the organisation see who is in it.');
  }
  const rows = list.map((m) => {
    if (!owner) return [m.name, badge(m.role, `role-${m.role}`)];
    const status = h('span', { class: 'small muted', 'aria-live': 'polite' });
    const select = roleSelect(m.role, { 'aria-label': `Role of ${m.name}` });
    select.addEventListener('change', async () => {
      select.disabled = true;
      status.textContent = 'Saving…';
      try {
        await api(`/orgs/${encodeURIComponent(org.name)}/members/${encodeURIComponent(m.name)}`, { method: 'PUT', body: { role: select.value } });
        ctx.reload();
      } catch (err) {
        select.value = m.role;
        select.disabled = false;
        status.replaceChildren(errorBox(err, 'Not changed'));
      }
    });
    return [m.name, h('span', null, select, status),
      confirmButton('Remove', `Remove ${m.name}`, async () => {
        await api(`/orgs/${encodeURIComponent(org.name)}/members/${encodeURIComponent(m.name)}`, { method: 'DELETE' });
        ctx.reload();
      })];
  });
  return table('Members', owner ? ['User', 'Role', ''] : ['User', 'Role'], rows);
}
