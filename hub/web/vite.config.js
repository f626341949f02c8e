// Builds the hub's web UI into static files that `sluice hub serve --web-dir` serves. The server's
// Content-Security-Policy allows only same-origin scripts, so everything is bundled (no CDN, no
// inline script) and assets are referenced from the site root (deep links like /extensions/a/b
// load /assets/... too).
import { defineConfig } from 'vite';

// `npm run dev` serves the UI with live reload and passes the API and the registry on to a
// running hub (SLUICE_HUB_URL, default the hub's default address).
const hub = process.env.SLUICE_HUB_URL || 'http://127.0.0.1:5080';

export default defineConfig({
  base: '/',
  server: {
    proxy: { '/api': hub, '/v2': hub },
  },
  build: {
    target: 'es2020',
    // Vite's module-preload polyfill is not needed by the browsers we support.
    modulePreload: { polyfill: false },
    // Keep fonts and images as files: the CSP allows data: images but not data: fonts.
    assetsInlineLimit: 0,
    reportCompressedSize: false,
  },
});
