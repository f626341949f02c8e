// Small DOM helpers. Every piece of data from the API becomes a text node or an attribute set
// with setAttribute: nothing is ever parsed as HTML here (the README goes through markdown.js).

/**
 * h('a', {href: '/x', class: 'link', onclick: fn}, 'text', child, [more]) builds an element.
 * Attributes named on* become event listeners; true adds an empty attribute; false, null and
 * undefined are skipped. Children may be strings, numbers, nodes, arrays, or null/false (skipped).
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [key, value] of Object.entries(attrs)) {
      if (value === false || value === null || value === undefined) continue;
      if (key.startsWith('on') && typeof value === 'function') {
        el.addEventListener(key.slice(2).toLowerCase(), value);
      } else if (key === 'value' && el.tagName !== 'INPUT' && 'value' in el) {
        el.value = value; // <select>/<textarea>: the property; <input>: the attribute, so reset() restores it
      } else {
        el.setAttribute(key, value === true ? '' : String(value));
      }
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.append(child);
    else el.append(document.createTextNode(String(child)));
  }
}

/** A link for an address from the API or a README: only http and https are clickable. */
export function safeHttpUrl(value) {
  if (typeof value !== 'string' || value === '') return null;
  try {
    const url = new URL(value);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
  } catch {
    return null;
  }
}

/** An external link (opens in place; no referrer, no opener). Plain text when the URL is unsafe. */
export function externalLink(url, text) {
  const safe = safeHttpUrl(url);
  if (!safe) return h('span', null, text ?? url);
  return h('a', { href: safe, rel: 'noopener noreferrer nofollow', 'data-external': true }, text ?? url);
}

export function formatBytes(n) {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '—';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

export function formatCount(n) {
  return typeof n === 'number' ? n.toLocaleString('en') : '0';
}

/** A <time> for Unix seconds: the date shown, the full UTC time in the tooltip. */
export function time(seconds) {
  if (!seconds) return h('span', { class: 'muted' }, 'never');
  const d = new Date(seconds * 1000);
  const iso = d.toISOString();
  return h('time', { datetime: iso, title: iso.replace('T', ' ').replace(/\.\d+Z$/, ' UTC') },
    d.toLocaleDateString('en-CA') + ' ' + d.toTimeString().slice(0, 5));
}

/** "sha256:0123456789ab…" shortened for tables; the full digest is in the title. */
export function shortDigest(digest) {
  if (!digest) return h('span', { class: 'muted' }, '—');
  const [algo, hex = ''] = digest.split(':');
  return h('code', { class: 'digest', title: digest }, `${algo}:${hex.slice(0, 12)}`);
}

export function badge(text, kind = '') {
  return h('span', { class: `badge ${kind}`.trim() }, text);
}

export function loading(what = 'Loading') {
  return h('div', { class: 'loading', role: 'status', 'aria-live': 'polite' },
    h('span', { class: 'spinner', 'aria-hidden': 'true' }), `${what}…`);
}

export function errorBox(err, title = 'Something went wrong') {
  return h('div', { class: 'alert error', role: 'alert' },
    h('strong', null, title + ': '), err && err.message ? err.message : String(err));
}

export function notice(text, kind = 'info') {
  return h('div', { class: `alert ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, text);
}

/** Copies text to the clipboard; falls back to a hidden textarea where the Clipboard API is
 *  unavailable (pages served over plain HTTP from a host other than localhost). */
export async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      // fall through to the legacy path (e.g. the permission was refused)
    }
  }
  const ta = h('textarea', { class: 'visually-hidden', readonly: true, 'aria-hidden': 'true' });
  ta.value = text;
  document.body.append(ta);
  ta.select();
  let ok = false;
  try {
    ok = document.execCommand('copy');
  } catch {
    ok = false;
  }
  ta.remove();
  return ok;
}

/** A "Copy" button for the text getText() returns; says "Copied" (or why not) for a while. */
export function copyButton(getText, label = 'Copy') {
  const status = h('span', { class: 'copy-status', 'aria-live': 'polite' });
  const button = h('button', {
    type: 'button',
    class: 'btn small',
    onclick: async () => {
      const ok = await copyText(getText());
      status.textContent = ok ? 'Copied' : 'Copy failed: select the text and copy it';
      clearTimeout(button._timer);
      button._timer = setTimeout(() => { status.textContent = ''; }, 2500);
    },
  }, label);
  return h('span', { class: 'copy' }, button, status);
}

/** A block of text (command, YAML) with a title and a copy button. */
export function snippet(title, text, { id, note } = {}) {
  const code = h('code', null, text);
  return h('section', { class: 'snippet', 'data-snippet': id },
    h('div', { class: 'snippet-head' }, h('h3', null, title), copyButton(() => text)),
    note ? h('p', { class: 'muted small' }, note) : null,
    h('pre', { tabindex: '0' }, code));
}

/** A <dl> of [label, value] pairs; pairs whose value is null/'' are left out. */
export function facts(pairs) {
  const dl = h('dl', { class: 'facts' });
  for (const [label, value] of pairs) {
    if (value === null || value === undefined || value === '') continue;
    dl.append(h('div', null, h('dt', null, label), h('dd', null, value)));
  }
  return dl;
}

/** A list of chips (ABI versions, root ids, function names); "none" when empty. */
export function chips(items, kind = '') {
  if (!items || items.length === 0) return h('span', { class: 'muted' }, 'none');
  return h('ul', { class: 'chips' }, items.map((x) => h('li', { class: `chip ${kind}`.trim() }, x)));
}

/** A table from column titles and rows (arrays of cells). */
export function table(caption, columns, rows, attrs = {}) {
  return h('div', { class: 'table-wrap' },
    h('table', attrs,
      caption ? h('caption', { class: 'visually-hidden' }, caption) : null,
      h('thead', null, h('tr', null, columns.map((c) => h('th', { scope: 'col' }, c || h('span', { class: 'visually-hidden' }, 'Actions'))))),
      h('tbody', null, rows.map((cells) => h('tr', null, cells.map((c) => h('td', null, c)))))));
}

/** Reads a form's named fields into an object (checkboxes as booleans). */
export function formValues(form) {
  const out = {};
  for (const el of form.elements) {
    if (!el.name) continue;
    out[el.name] = el.type === 'checkbox' ? el.checked : el.value;
  }
  return out;
}

/**
 * Wires a form to an async action: disables the submit button while it runs and shows the
 * error it throws in the form's error slot. Returns the form.
 */
export function asyncForm(form, action) {
  const errorSlot = h('div', { class: 'form-error', 'aria-live': 'assertive' });
  form.append(errorSlot);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const submit = form.querySelector('[type=submit]');
    errorSlot.replaceChildren();
    if (submit) submit.disabled = true;
    try {
      await action(formValues(form), form);
    } catch (err) {
      errorSlot.replaceChildren(errorBox(err, 'Error'));
    } finally {
      if (submit) submit.disabled = false;
    }
  });
  return form;
}

/** A labelled form field. */
export function field(label, input, hint) {
  const id = input.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  input.id = id;
  return h('div', { class: 'field' },
    h('label', { for: id }, label), input, hint ? h('small', { class: 'muted' }, hint) : null);
}

/** A button that asks to be clicked twice before doing something destructive (no modal). */
export function confirmButton(label, confirmLabel, action) {
  const wrap = h('span', { class: 'confirm' });
  const idle = () => {
    const b = h('button', { type: 'button', class: 'btn small danger-outline', onclick: ask }, label);
    wrap.replaceChildren(b);
  };
  const ask = () => {
    const yes = h('button', {
      type: 'button',
      class: 'btn small danger',
      onclick: async () => {
        yes.disabled = true;
        try {
          await action();
        } catch (err) {
          idle();
          wrap.prepend(errorBox(err, 'Error'));
        }
      },
    }, confirmLabel);
    const no = h('button', { type: 'button', class: 'btn small', onclick: idle }, 'Cancel');
    wrap.replaceChildren(yes, no);
    yes.focus();
  };
  idle();
  return wrap;
}
