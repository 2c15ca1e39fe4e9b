// Typechecking only: the page imports @ring-linear/backend-webgpu for its side effect (registering
// the 'webgpu' backend). Its sources are checked by its own package against @webgpu/types alone;
// under the DOM library their writeBuffer calls do not typecheck (BufferSource is stricter there).
declare module '@ring-linear/backend-webgpu' {}
