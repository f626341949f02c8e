// "/tokens" : the user's access tokens: list, create (the secret is shown once), revoke.
import { h, field, asyncForm, table, time, badge, confirmButton, copyButton } from '../dom.js';
import { api } from '../api.js';
import { session, logOut, navigate } from '../app.js';
import { needLogin } from './common.js';

export async function tokensPage(ctx) {
  if (!session.user) return needLogin('Managing tokens');
  const listSlot = h('div', { 'data-testid': 'token-list' });
  const created = h('div', { class: 'created-slot', 'aria-live': 'polite' });

  async function refresh() {
    const data = await api('/tokens');
    listSlot.replaceChildren(renderList(data.tokens || [], refresh));
  }

  const form = asyncForm(h('form', { class: 'card form', 'aria-labelledby': 'new-token-h' },
    h('h2', { id: 'new-token-h' }, 'New token'),
    h('div', { class: 'form-row' },
      field('Description', h('input', { name: 'description', maxlength: 200, placeholder: 'e.g. CI pulls' })),
      field('Scope', h('select', { name: 'scope' },
        h('option', { value: 'read' }, 'read: pull'),
        h('option', { value: 'push', selected: true }, 'push: pull and push'),
        h('option', { value: 'admin' }, 'admin: everything you may do'))),
      field('Expires in (days)', h('input', { name: 'expires_in_days', type: 'number', min: 1, max: 366, value: '90', required: true }), '1 to 366')),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'btn primary' }, 'Create token'))),
  async (values, f) => {
    const body = {
      description: values.description.trim(),
      scope: values.scope,
      expires_in_days: Number.parseInt(values.expires_in_days, 10),
    };
    const made = await api('/tokens', { method: 'POST', body });
    created.replaceChildren(newSecret('Your new token', made.token,
      `Scope ${made.scope}, expires ${made.expires ? new Date(made.expires * 1000).toISOString().slice(0, 10) : 'never'}.`));
    f.reset();
    await refresh();
  });

  await refresh();
  return {
    title: 'Tokens',
    node: h('section', null,
      h('h1', null, 'Access tokens'),
      h('p', { class: 'muted' }, 'Tokens log in the CLI (', h('code', null, 'sluice ext login HOST -u ' + session.user.name + ' --password-stdin'),
        '), other OCI clients (as the password) and this site. Your current token has scope ',
        h('strong', null, session.user.token_scope), '.'),
      created, form,
      h('h2', null, 'Your tokens'), listSlot),
  };

  function renderList(tokens, again) {
    if (tokens.length === 0) return h('p', { class: 'muted' }, 'No tokens.');
    const rows = tokens.map((t) => [
      h('code', null, t.id),
      t.description || h('span', { class: 'muted' }, '—'),
      badge(t.scope, `scope-${t.scope}`),
      time(t.created),
      t.expired ? badge('expired', 'warning') : time(t.expires),
      time(t.last_used),
      h('span', { class: 'row-actions' },
        t.current ? badge('this session', 'current') : null,
        confirmButton('Revoke', 'Revoke now', async () => {
          await api(`/tokens/${encodeURIComponent(t.id)}`, { method: 'DELETE' });
          if (t.current) {
            logOut('You revoked the token you were logged in with.');
            navigate('/login', { replace: true });
            return;
          }
          await again();
        })),
    ]);
    return table('Your tokens', ['Id', 'Description', 'Scope', 'Created', 'Expires', 'Last used', ''], rows);
  }
}

/** A secret shown once, with a copy button. */
export function newSecret(title, secret, detail) {
  const input = h('input', { type: 'text', readonly: true, value: secret, class: 'secret', 'aria-label': title, 'data-testid': 'new-token', spellcheck: 'false' });
  input.addEventListener('focus', () => input.select());
  return h('div', { class: 'alert success secret-box' },
    h('h2', null, title),
    h('p', null, h('strong', null, 'Copy it now: '), 'it is shown only once. ', detail || ''),
    h('div', { class: 'secret-row' }, input, copyButton(() => secret)));
}

