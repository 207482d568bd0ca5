/** world-atlas ships TopoJSON files without types; esbuild bundles them as JSON. */
declare module 'world-atlas/countries-110m.json' {
  const topology: unknown;
  export default topology;
}
