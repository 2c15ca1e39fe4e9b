/**
 * Vitest adapter: one `it` per op x dtype (and op x error inputs), so a failure names the op and
 * the dtype and shows what differed. Import from '@ring-linear/conformance/vitest'.
 *
 *   import '@ring-linear/backend-cpu';
 *   import '@my/backend';
 *   describeConformance({ backend: 'mine' });
 */
import { afterAll, beforeAll, describe, it } from 'vitest';
import { ConformanceSession, planConformance, type ConformanceOptions } from './runner.js';
import { freshSeed } from './rng.js';

export interface DescribeConformanceOptions extends ConformanceOptions {
  /** Skip the whole suite with this reason (e.g. no GPU here); printed, never counted as passed. */
  readonly skip?: string | false;
}

export function describeConformance(options: DescribeConformanceOptions): void {
  // One seed for the whole file, fixed at collection time so test names and reruns agree.
  const envSeed = typeof process !== 'undefined' ? process.env?.RING_LINEAR_SEED : undefined; // absent in browsers
  const seed = options.seed ?? (envSeed !== undefined && envSeed !== '' ? Number(envSeed) >>> 0 : freshSeed());
  const opts: ConformanceOptions = { ...options, seed };
  const name = typeof options.backend === 'string' ? options.backend : (options.name ?? 'backend');
  const plan = planConformance(opts);
  const log = options.log === undefined ? (l: string) => console.log(l) : options.log;

  describe(`conformance: ${name} (seed ${seed})`, () => {
    if (options.skip) {
      it.skip(`skipped: ${options.skip}`, () => undefined);
      log?.(`conformance '${name}' skipped: ${options.skip}`);
      return;
    }
    let session: ConformanceSession | undefined;
    beforeAll(async () => {
      session = await ConformanceSession.open(opts);
    });
    afterAll(async () => {
      if (!session) return;
      log?.(session.result().summary);
      await session.close();
    });
    for (const c of plan) {
      it(c.id, async (ctx) => {
        if (!session) throw new Error('the conformance session did not open (see beforeAll)');
        const r = await session.runCase(c);
        if (r.status === 'xfail') {
          ctx.skip(`expected failure on '${session.backendName}': ${r.xfailReason}`);
          return;
        }
        if (r.status !== 'passed') {
          throw new Error(`${c.id} on '${session.backendName}' (reproduce: seed ${seed}):\n  ${r.messages.join('\n  ')}`);
        }
      });
    }
  });
}
