// The deployment file: the example parses, defaults fill the guard, and every invalid
// field is refused with a message naming it, all problems at once.
import { describe, expect, it } from 'vitest';
import { GUARD_DEFAULTS, canaryKey, parseDeployment } from '../../../src/model/deployment.js';
import { thrown } from '../../helpers/fixtures.js';

const ctx = { file: '/etc/scorer/deployment.json', versions: ['1.0.0', '1.1.0', '1.2.0'], reservedTopics: ['features', 'scores', 'scores-dlq'] };
const parse = (value: unknown) => parseDeployment(JSON.stringify(value), ctx);
const problem = (value: unknown): string => thrown(() => parse(value)).message.replace(`MODEL_DEPLOYMENT: ${ctx.file}: `, '');

const EXAMPLE = {
  stable: '1.0.0',
  canary: { version: '1.1.0', percent: 10, guard: { maxFailureRate: 0.01, maxP99Ratio: 2.0, minRows: 5000, promote: [25, 50, 100], promoteAfterRows: 20000 } },
  shadow: { version: '1.2.0', topic: 'scores-shadow', percent: 100 },
};

describe('parseDeployment', () => {
  it('reads the example of the issue as written', () => {
    expect(parse(EXAMPLE)).toEqual(EXAMPLE);
  });

  it('needs only stable; null removes a role; guard fields and shadow.percent default', () => {
    expect(parse({ stable: '1.1.0' })).toEqual({ stable: '1.1.0' });
    expect(parse({ stable: '1.1.0', canary: null, shadow: null })).toEqual({ stable: '1.1.0' });
    expect(parse({ stable: '1.0.0', canary: { version: '1.1.0', percent: 0 } })).toEqual({ stable: '1.0.0', canary: { version: '1.1.0', percent: 0 } });
    expect(parse({ stable: '1.0.0', canary: { version: '1.1.0', percent: 12.5, guard: {} } }).canary?.guard).toEqual(GUARD_DEFAULTS);
    expect(parse({ stable: '1.0.0', shadow: { version: '1.1.0', topic: 'scores-shadow' } }).shadow).toEqual({ version: '1.1.0', topic: 'scores-shadow', percent: 100 });
  });

  it.each([
    [{ ...EXAMPLE, canary: { ...EXAMPLE.canary, percent: 120 } }, 'canary.percent: expected a number from 0 to 100, got 120'],
    [{ ...EXAMPLE, canary: { ...EXAMPLE.canary, percent: '10' } }, 'canary.percent: expected a number from 0 to 100, got "10"'],
    [{ ...EXAMPLE, canary: { version: '1.1.0' } }, 'canary.percent: expected a number from 0 to 100, got nothing'],
    [{ stable: '9.9.9' }, 'stable: no version "9.9.9" in the repository (it has 1.0.0, 1.1.0, 1.2.0)'],
    [{ stable: 1 }, 'stable: expected a version of the repository (1.0.0, 1.1.0, 1.2.0), got 1'],
    [{}, 'stable: expected a version of the repository (1.0.0, 1.1.0, 1.2.0), got nothing'],
    [{ stable: '1.0.0', canary: { version: '1.0.0', percent: 5 } }, 'canary.version: "1.0.0" is already the stable version; each role needs its own'],
    [{ stable: '1.0.0', canary: { version: '1.3.0', percent: 5 } }, 'canary.version: no version "1.3.0" in the repository (it has 1.0.0, 1.1.0, 1.2.0)'],
    [{ stable: '1.0.0', canary: '1.1.0' }, 'canary: expected an object, got "1.1.0"'],
    [{ stable: '1.0.0', canary: { version: '1.1.0', percent: 5, weight: 3 } }, 'canary.weight: unknown field (expected version, percent, guard)'],
    [{ stable: '1.0.0', stabel: '1.1.0' }, 'stabel: unknown field (expected stable, canary, shadow)'],
    [{ ...EXAMPLE, canary: { ...EXAMPLE.canary, guard: { maxFailureRate: 1.5 } } }, 'canary.guard.maxFailureRate: expected a number from 0 to 1, got 1.5'],
    [{ ...EXAMPLE, canary: { ...EXAMPLE.canary, guard: { maxP99Ratio: 0.5 } } }, 'canary.guard.maxP99Ratio: expected a number >= 1, got 0.5'],
    [{ ...EXAMPLE, canary: { ...EXAMPLE.canary, guard: { minRows: 10.5 } } }, 'canary.guard.minRows: expected an integer >= 1, got 10.5'],
    [{ ...EXAMPLE, canary: { ...EXAMPLE.canary, guard: { promoteAfterRows: 0 } } }, 'canary.guard.promoteAfterRows: expected an integer >= 1, got 0'],
    [{ ...EXAMPLE, canary: { ...EXAMPLE.canary, guard: { promote: [50, 25] } } }, 'canary.guard.promote: expected increasing percents above canary.percent (10), at most 100, got [50,25]'],
    [{ ...EXAMPLE, canary: { ...EXAMPLE.canary, guard: { promote: [5, 50] } } }, 'canary.guard.promote: expected increasing percents above canary.percent (10), at most 100, got [5,50]'],
    [{ ...EXAMPLE, canary: { ...EXAMPLE.canary, guard: { promote: [50, 150] } } }, 'canary.guard.promote: expected increasing percents above canary.percent (10), at most 100, got [50,150]'],
    [{ ...EXAMPLE, canary: { ...EXAMPLE.canary, guard: { maxFailRate: 0.1 } } }, 'canary.guard.maxFailRate: unknown field (expected maxFailureRate, maxP99Ratio, minRows, promote, promoteAfterRows)'],
    [{ ...EXAMPLE, shadow: { ...EXAMPLE.shadow, version: '1.1.0' } }, 'shadow.version: "1.1.0" is already the canary version; each role needs its own'],
    [{ ...EXAMPLE, shadow: { ...EXAMPLE.shadow, topic: 'scores' } }, 'shadow.topic: "scores" is the scorer\'s input, output or dead-letter topic; the shadow needs its own'],
    [{ ...EXAMPLE, shadow: { ...EXAMPLE.shadow, topic: 'bad topic' } }, 'shadow.topic: expected a Kafka topic name ([a-zA-Z0-9._-]{1,249}), got "bad topic"'],
    [{ ...EXAMPLE, shadow: { version: '1.2.0', percent: -1, topic: 's' } }, 'shadow.percent: expected a number from 0 to 100, got -1'],
  ])('refuses %j: %s', (value, message) => {
    expect(problem(value)).toBe(message);
  });

  it('reports every problem at once, and names the file', () => {
    const err = thrown(() => parse({ stable: '2.0.0', canary: { version: '1.1.0', percent: 120 }, shadow: { version: '1.2.0' } }));
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.message).toBe(
      `MODEL_DEPLOYMENT: ${ctx.file}: 3 problems: stable: no version "2.0.0" in the repository (it has 1.0.0, 1.1.0, 1.2.0); ` +
        'canary.percent: expected a number from 0 to 100, got 120; shadow.topic: expected a Kafka topic name ([a-zA-Z0-9._-]{1,249}), got nothing',
    );
  });

  it.each([
    ['{ "stable": ', /^not valid JSON \(/],
    ['', /^not valid JSON \(/],
    ['[]', /^expected a JSON object like \{"stable": "1\.2\.0"\}, got \[\]$/],
    ['"1.0.0"', /^expected a JSON object like .*, got "1\.0\.0"$/],
  ])('refuses the text %j', (text, message) => {
    expect(thrown(() => parseDeployment(text, ctx)).message.replace(`MODEL_DEPLOYMENT: ${ctx.file}: `, '')).toMatch(message);
  });
});

describe('canaryKey', () => {
  it('is the same while stable, canary and guard are, whatever the shadow does', () => {
    const a = parse(EXAMPLE);
    const key = canaryKey(a);
    expect(key).toMatch(/^[0-9a-f]{16}$/);
    expect(canaryKey(parse({ ...EXAMPLE, shadow: undefined }))).toBe(key);
    expect(canaryKey(parse({ ...EXAMPLE, canary: { ...EXAMPLE.canary, percent: 20 } }))).not.toBe(key);
    expect(canaryKey(parse({ ...EXAMPLE, canary: { ...EXAMPLE.canary, guard: { ...EXAMPLE.canary.guard, minRows: 10 } } }))).not.toBe(key);
    expect(canaryKey(parse({ ...EXAMPLE, stable: '1.2.0', shadow: undefined }))).not.toBe(key);
    expect(canaryKey(parse({ stable: '1.0.0' }))).toBeUndefined();
  });
});
