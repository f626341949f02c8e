// Entry point: the header, the client-side router (History API; the hub answers every
// extension-less path with index.html) and the start-up session check.
import './style.css';
import { h, loading, errorBox } from './dom.js';
import { session, loadSession, logOut, onSessionChange, setRouter, navigate, ageFlash } from './app.js';
import { searchPage } from './pages/search.js';
import { extensionPage } from './pages/extension.js';
import { loginPage } from './pages/login.js';
import { tokensPage } from './pages/tokens.js';
import { accountPage } from './pages/account.js';
import { orgPage } from './pages/org.js';
import { usersPage } from './pages/users.js';
import { auditPage } from './pages/audit.js';
import { notFoundPage } from './pages/notfound.js';

// [pattern, page]: a page is async ({params, query}) => {title, node}.
const routes = [
  [/^\/$/, searchPage],
  [/^\/extensions\/([^/]+)\/(.+?)\/?$/, extensionPage],
  [/^\/login\/?$/, loginPage],
  [/^\/tokens\/?$/, tokensPage],
  [/^\/account\/?$/, accountPage],
  [/^\/orgs\/([^/]+)\/?$/, orgPage],
  [/^\/users\/?$/, usersPage],
  [/^\/audit\/?$/, auditPage],
];

function match(pathname) {
  for (const [re, page] of routes) {
    const m = re.exec(pathname);
    if (m) return { page, params: m.slice(1).map(decodeURIComponent) };
  }
  return null;
}

const main = document.getElementById('main');
let navId = 0;

async function route({ focus = false } = {}) {
  const id = ++navId;
  ageFlash();
  const found = match(location.pathname);
  const page = found ? found.page : notFoundPage;
  const ctx = {
    params: found ? found.params : [],
    query: new URLSearchParams(location.search),
    // A page may re-render itself (after a change) while it is still the current one.
    isCurrent: () => id === navId,
    reload: () => route(),
  };
  main.setAttribute('aria-busy', 'true');
  main.replaceChildren(loading());
  let result;
  try {
    result = await page(ctx);
  } catch (err) {
    result = { title: 'Error', node: errorBox(err) };
  }
  if (id !== navId) return; // the user moved on while this page loaded
  document.title = result.title ? `${result.title} · Sluice Hub` : 'Sluice Hub';
  main.replaceChildren(result.node);
  main.removeAttribute('aria-busy');
  updateNav();
  if (focus) {
    // Screen readers announce the new page; keyboard users start from its top.
    main.focus({ preventScroll: true });
    window.scrollTo(0, 0);
  }
}

// ---- header ---------------------------------------------------------------------------------------

const header = document.getElementById('site-header');

function navLink(path, text) {
  return h('a', { href: path, class: 'nav-link', 'data-nav': path }, text);
}

function renderHeader() {
  const user = session.user;
  const links = [navLink('/', 'Browse')];
  if (user) {
    links.push(navLink('/account', 'Account'), navLink('/tokens', 'Tokens'));
    if (user.admin) links.push(navLink('/users', 'Users'));
    links.push(navLink('/audit', 'Audit log'));
  }
  const right = user
    ? h('div', { class: 'user-box' },
      h('span', { class: 'user-name', 'data-testid': 'user-name' }, h('span', { class: 'muted' }, 'Signed in as '), user.name),
      h('button', {
        type: 'button',
        class: 'btn small',
        onclick: () => {
          logOut('You are logged out.');
          navigate('/');
        },
      }, 'Log out'))
    : h('div', { class: 'user-box' }, h('a', { href: '/login', class: 'btn small primary' }, 'Log in'));
  header.replaceChildren(
    h('div', { class: 'header-inner' },
      h('a', { href: '/', class: 'brand', 'aria-label': 'Sluice Hub home' },
        h('img', { src: '/favicon.svg', alt: '', width: 28, height: 28 }),
        h('span', null, 'Sluice ', h('strong', null, 'Hub'))),
      h('nav', { 'aria-label': 'Main' }, links),
      right));
  updateNav();
}

function updateNav() {
  for (const a of header.querySelectorAll('[data-nav]')) {
    const path = a.getAttribute('data-nav');
    const current = path === '/' ? location.pathname === '/' : location.pathname.startsWith(path);
    if (current) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

// ---- links ---------------------------------------------------------------------------------------

// Same-origin links to the app's own pages navigate without a reload; anything else (the API,
// /v2/, external sites, new-tab clicks) is left to the browser.
document.addEventListener('click', (event) => {
  if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey ||
      event.shiftKey || event.altKey) return;
  const a = event.target.closest('a[href]');
  if (!a || a.target || a.hasAttribute('download') || a.hasAttribute('data-external')) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin) return;
  if (url.pathname === location.pathname && url.search === location.search && url.hash) return;
  if (!match(url.pathname)) return;
  event.preventDefault();
  navigate(url.pathname + url.search + url.hash);
});

window.addEventListener('popstate', () => route({ focus: true }));

onSessionChange(renderHeader);
setRouter(route);
renderHeader();
main.replaceChildren(loading());
loadSession().finally(() => route());
