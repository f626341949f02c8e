// Application state shared by the pages: who is logged in, client-side navigation and flash
// messages. Kept apart from main.js so pages can import it without a cycle.
import { api, storeToken, storedToken, ApiError } from './api.js';
import { h } from './dom.js';

export const session = {
  user: null, // GET /api/v1/user when a token is stored and valid
  listeners: new Set(),
};

export function onSessionChange(fn) {
  session.listeners.add(fn);
}

function sessionChanged() {
  for (const fn of session.listeners) fn(session.user);
}

/** Checks the stored token at start-up; a token the hub no longer accepts is dropped. */
export async function loadSession() {
  if (!storedToken()) return;
  try {
    session.user = await api('/user');
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      storeToken(null);
      flash(`You were logged out: ${err.message}.`, 'warning');
    } else {
      flash(`Cannot check your login: ${err.message}`, 'error');
    }
  }
  sessionChanged();
}

/** Stores a token checked by the login page, with the user it belongs to. */
export function logIn(token, user) {
  storeToken(token);
  session.user = user;
  sessionChanged();
}

export function logOut(message) {
  storeToken(null);
  session.user = null;
  sessionChanged();
  if (message) flash(message, 'info');
}

/** Re-reads the user (orgs and roles change). */
export async function refreshUser() {
  if (!storedToken()) return;
  session.user = await api('/user');
  sessionChanged();
}

// ---- navigation ------------------------------------------------------------------------------

let router = null;
export function setRouter(fn) {
  router = fn;
}

/** Goes to a path inside the app without reloading the page. */
export function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  if (router) router({ focus: true });
}

// ---- flash messages ------------------------------------------------------------------------------

/** A message above the page (kept across one navigation, e.g. "logged out"). */
export function flash(text, kind = 'info') {
  const region = document.getElementById('flash');
  if (!region) return;
  const close = h('button', { type: 'button', class: 'flash-close', 'aria-label': 'Dismiss' }, '×');
  const box = h('div', { class: `alert ${kind}` }, h('span', null, text), close);
  close.addEventListener('click', () => box.remove());
  region.replaceChildren(box);
  box.dataset.age = '0';
}

/** Called on every navigation: a flash survives the navigation right after it was set. */
export function ageFlash() {
  const region = document.getElementById('flash');
  if (!region) return;
  for (const box of [...region.children]) {
    const age = Number(box.dataset.age || 0) + 1;
    if (age > 1) box.remove();
    else box.dataset.age = String(age);
  }
}
