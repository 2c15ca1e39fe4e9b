/**
 * Verifiable tasks for RL: prompts drawn from a seeded stream and a reward computed from the
 * completion alone (no learned reward model).
 */
import { TrainerConfigError } from '../errors.js';
import type { TaskRandom } from '../tasks.js';

/** A prompt and whatever the verifier needs to score completions of it. */
export interface RLItem {
  readonly prompt: string | readonly number[];
  readonly answer: string;
}

/** A completion as the verifier sees it: the text (special tokens left out), the ids, why it ended. */
export interface Completion {
  readonly text: string;
  readonly tokens: readonly number[];
  readonly finishReason: string | null;
}

export interface RLTask {
  prompts(count: number, random: TaskRandom): RLItem[];
  reward(item: RLItem, completion: Completion): number;
}

export interface AdditionTaskOptions {
  /** Operands are drawn from [0, maxOperand] (default 9). */
  readonly maxOperand?: number;
}

/**
 * Small-number addition: prompt "a+b=", reward 1 when the completion is exactly the decimal sum
 * followed by the end-of-sequence token, else 0.
 */
export function additionTask(options: AdditionTaskOptions = {}): RLTask {
  const max = options.maxOperand ?? 9;
  if (!Number.isInteger(max) || max < 0) throw new TrainerConfigError(`additionTask: maxOperand must be an integer >= 0, got ${max}`);
  return {
    prompts(count, random) {
      return Array.from({ length: count }, () => {
        const a = random.int(max + 1);
        const b = random.int(max + 1);
        return { prompt: `${a}+${b}=`, answer: String(a + b) };
      });
    },
    reward(item, c) {
      return c.finishReason === 'eos' && c.text === item.answer ? 1 : 0;
    },
  };
}
