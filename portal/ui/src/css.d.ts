// esbuild bundles CSS imported from TypeScript into assets/app.css.
declare module '*.css';
