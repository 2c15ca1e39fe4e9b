// nn basics: Parameter, Module and ModuleList, the layers model code is built from, initializers.
export * from './parameter.js';
export * from './module.js';
export * from './layers.js';
export * as init from './init.js';
