// "/login" : the hub has no passwords in the browser; a user pastes an access token (from
// `sluice hub user add`, or made on the Tokens page). It is checked with GET /api/v1/user
// before it is kept (in sessionStorage, for this tab only).
import { h, field, asyncForm, notice } from '../dom.js';
import { api } from '../api.js';
import { session, logIn, navigate } from '../app.js';

export async function loginPage(ctx) {
  const next = safeNext(ctx.query.get('next'));
  if (session.user) {
    return {
      title: 'Log in',
      node: h('section', { class: 'narrow' },
        h('h1', null, 'Log in'),
        notice(`You are signed in as ${session.user.name}. Log out first to use another token.`, 'info'),
        h('p', null, h('a', { href: '/account' }, 'Your account'))),
    };
  }
  const input = h('input', {
    type: 'password',
    name: 'token',
    required: true,
    autocomplete: 'off',
    spellcheck: 'false',
    placeholder: 'slh_…',
  });
  const form = asyncForm(h('form', { class: 'card form', 'aria-label': 'Log in with a token' },
    field('Access token', input, 'Kept in this browser tab only (sessionStorage), sent as a Bearer token.'),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'btn primary' }, 'Log in'))),
  async ({ token }) => {
    const t = token.trim();
    if (!t) throw new Error('paste a token');
    const user = await api('/user', { token: t });
    logIn(t, user);
    navigate(next || '/account', { replace: true });
  });
  return {
    title: 'Log in',
    node: h('section', { class: 'narrow' },
      h('h1', null, 'Log in'),
      h('p', null, 'Paste an access token. An administrator makes your account and its first token with ',
        h('code', null, 'sluice hub user add NAME'), '; you can make more tokens once logged in.'),
      form),
  };
}

/** Only paths inside this site are followed after logging in (no open redirect). */
function safeNext(next) {
  return next && next.startsWith('/') && !next.startsWith('//') && !next.startsWith('/\\') ? next : null;
}
