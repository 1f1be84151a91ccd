import { defineConfig } from "vite";

// The app is served by personas-admin under /personas/ (see ../ui.go), so
// every asset URL is absolute under that base. Hashed file names let the
// server mark them immutable; index.html itself is never cached.
export default defineConfig({
  base: "/personas/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    assetsDir: "assets",
    sourcemap: false,
    // No inline <script> or data: modules: the CSP forbids inline scripts.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
  },
  server: {
    // `npm run dev`: proxy the API and mana-auth to a running `make dev` gateway.
    proxy: { "/api": "http://127.0.0.1:3060" },
  },
});
