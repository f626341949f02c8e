// "/audit" : the audit log (administrators: everything; namespace owners: ?repository=NS).
import { h, table, time, shortDigest, errorBox, loading } from '../dom.js';
import { api } from '../api.js';
import { session, navigate } from '../app.js';
import { needLogin } from './common.js';

export async function auditPage(ctx) {
  if (!session.user) return needLogin('The audit log');
  // Administrators read the whole log; others only their namespaces': start with their own.
  const ns = ctx.query.get('repository') || (session.user.admin ? '' : session.user.name);
  const slot = h('div', { 'data-testid': 'audit' }, loading());
  const input = h('input', { type: 'text', name: 'repository', value: ns, placeholder: session.user.admin ? 'all namespaces' : session.user.name, 'aria-label': 'Namespace' });
  const form = h('form', {
    class: 'inline-form',
    onsubmit: (e) => {
      e.preventDefault();
      const v = input.value.trim();
      navigate(v ? `/audit?repository=${encodeURIComponent(v)}` : '/audit');
    },
  }, h('label', null, 'Namespace ', input), h('button', { type: 'submit', class: 'btn small' }, 'Show'));
  try {
    const data = await api(ns ? `/audit?repository=${encodeURIComponent(ns)}` : '/audit');
    const entries = data.entries || [];
    slot.replaceChildren(entries.length
      ? table('Audit log', ['Time', 'Actor', 'Action', 'Repository', 'Reference', 'Digest', 'From', 'Detail'],
        entries.map((e) => [time(e.time), e.actor || '—', h('code', null, e.action), e.repository || '—',
          e.reference || '—', e.digest ? shortDigest(e.digest) : '—', e.remote || '—', e.detail || '']))
      : h('p', { class: 'muted' }, 'Nothing logged.'));
  } catch (err) {
    slot.replaceChildren(errorBox(err, 'Cannot read the audit log'));
  }
  return {
    title: 'Audit log',
    node: h('section', null, h('h1', null, 'Audit log'),
      h('p', { class: 'muted' }, session.user.admin ? 'Administrators see every namespace.' : 'Owners see their namespaces: name one.'),
      form, slot),
  };
}
