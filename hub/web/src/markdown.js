// README rendering: marked turns markdown into HTML, DOMPurify removes anything active from it
// (scripts, event handlers, javascript: URLs, forms, styles, SVG/MathML) and returns DOM nodes,
// so the page never assigns HTML strings to innerHTML itself.
import { Marked } from 'marked';
import DOMPurify from 'dompurify';

const marked = new Marked({ gfm: true, breaks: false, async: false });

const purifier = DOMPurify(window);

// Links: absolute http(s) and mailto URLs and in-page anchors only (a relative link in a README
// means a file of its source repository, not a page of the hub); external links get no referrer
// and no opener. Images: absolute http(s) and data:image URLs only (the server's CSP also limits
// img-src to 'self', data: and https:).
purifier.addHook('afterSanitizeAttributes', (node) => {
  if (node.hasAttribute('href')) {
    const href = node.getAttribute('href').trim();
    const url = absolute(href);
    if (href.startsWith('#') && node.tagName === 'A') {
      // a fragment inside the README: fine as it is
    } else if (!url || !['http:', 'https:', 'mailto:'].includes(url.protocol)) {
      node.removeAttribute('href');
    } else {
      node.setAttribute('rel', 'noopener noreferrer nofollow');
      node.setAttribute('data-external', '');
    }
  }
  if (node.tagName === 'IMG') {
    const url = absolute((node.getAttribute('src') || '').trim());
    const ok = url && (url.protocol === 'https:' || url.protocol === 'http:' ||
      (url.protocol === 'data:' && /^data:image\/(png|gif|jpe?g|webp);/i.test(url.href)));
    if (!ok) node.removeAttribute('src');
    node.removeAttribute('srcset');
    node.setAttribute('loading', 'lazy');
    node.setAttribute('referrerpolicy', 'no-referrer');
  }
});

/** The URL if value is absolute (has a scheme), else null. */
function absolute(value) {
  try {
    return new URL(value);
  } catch {
    return null;
  }
}

const PURIFY_OPTIONS = {
  USE_PROFILES: { html: true }, // no SVG or MathML
  FORBID_TAGS: ['style', 'form', 'input', 'button', 'textarea', 'select', 'option', 'dialog'],
  FORBID_ATTR: ['style', 'class', 'autofocus', 'tabindex'],
  SANITIZE_NAMED_PROPS: true, // ids and names prefixed "user-content-": no DOM clobbering
  RETURN_DOM_FRAGMENT: true,
};

/** Markdown text -> a sanitised DocumentFragment. */
export function renderMarkdown(text) {
  const html = marked.parse(String(text ?? ''));
  return purifier.sanitize(html, PURIFY_OPTIONS);
}
