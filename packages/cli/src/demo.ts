/**
 * @ring-linear/cli/demo: the demo's corpus and model without any Node.js import, for browsers
 * (the playground trains the same model on the same stories).
 */
export { demoCorpus, story, corpusWords, CorpusRandom, DEMO_PROMPTS, type DemoCorpusOptions } from './corpus.js';
export { demoModelConfig, describeLayers, DEMO_RECIPE } from './demo-model.js';
