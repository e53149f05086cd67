/** OIP request bodies -> rows: the three accepted shapes, and 400 messages naming input, row and field. */
import { describe, expect, it } from 'vitest';
import type { Manifest } from '../../../src/model/manifest.js';
import { EventRows } from '../../../src/serve/event-rows.js';
import { type ModelInput, RequestError, parseInferRequest } from '../../../src/serve/oip-request.js';
import { CHURN_FEATURES, readRepoJson } from '../../helpers/fixtures.js';

const manifest = readRepoJson<Manifest>('models/churn.manifest.json');
const model: ModelInput = { name: manifest.input.name, width: manifest.input.width, rows: new EventRows({ manifest, readerSchema: readRepoJson('schemas/feature-event.avsc'), requireEnvelope: false }) };
const row = manifest.features.map((f) => Number(CHURN_FEATURES[f]));
const fail = (body: unknown): RequestError => {
  try {
    parseInferRequest(body, model);
  } catch (err) {
    expect(err).toBeInstanceOf(RequestError);
    return err as RequestError;
  }
  throw new Error('expected a RequestError');
};

describe('parseInferRequest', () => {
  it('gives the same float32 row for the tensor, the columnar and the feature-event forms', () => {
    const tensor = parseInferRequest({ inputs: [{ name: manifest.input.name, shape: [1, row.length], datatype: 'FP64', data: [row] }] }, model).chunk;
    const columns = parseInferRequest({ inputs: manifest.features.map((f, i) => ({ name: f, shape: [1], datatype: 'FP64', data: [row[i]] })) }, model).chunk;
    const event = parseInferRequest({ features: CHURN_FEATURES }, model).chunk;
    expect(tensor.rows).toBe(1);
    expect([...columns.features]).toEqual([...tensor.features]);
    expect([...event.features]).toEqual([...tensor.features]);
  });

  it('takes a one-row tensor of shape [width], nested or flat data, an id and requested outputs', () => {
    const r = parseInferRequest({ id: 'a', outputs: [{ name: 'score' }], inputs: [{ name: manifest.input.name, shape: [row.length], datatype: 'FP32', data: row }] }, model);
    expect(r).toMatchObject({ id: 'a', outputs: ['score'] });
    expect(r.chunk.rows).toBe(1);
  });

  it('names the input, row and feature of a bad value, and the shape that does not fit', () => {
    const data = [row, [...row.slice(0, 2), null, ...row.slice(3)]];
    expect(fail({ inputs: [{ name: manifest.input.name, shape: [2, row.length], datatype: 'FP32', data }] }).message).toContain(`data[${row.length + 2}] (row 1, feature ${manifest.features[2]})`);
    expect(fail({ inputs: [{ name: manifest.input.name, shape: [1, 2], datatype: 'FP32', data: [1, 2] }] }).message).toContain(`expected [rows, ${row.length}]`);
    expect(fail({ inputs: [{ name: manifest.input.name, shape: [1, row.length], datatype: 'BYTES', data: row }] }).message).toContain('datatype');
    expect(fail({ inputs: [{ name: manifest.input.name, shape: [1, row.length], datatype: 'FP32', data: [...row.slice(1), 1e39] }] }).message).toContain('not a finite float32');
  });

  it('names a missing or unknown column, and rejects bodies of no known shape', () => {
    expect(fail({ inputs: manifest.features.slice(1).map((f) => ({ name: f, shape: [1], datatype: 'FP64', data: [1] })) }).message).toContain(`no input named '${manifest.features[0]}'`);
    expect(fail({ inputs: [{ name: 'colour', shape: [1], datatype: 'FP64', data: [1] }] }).message).toContain("'colour' is neither");
    expect(fail({ hello: 1 }).message).toContain("expected 'inputs'");
    expect(fail({ inputs: [] }).message).toContain('non-empty array');
  });

  it('reports a bad feature event as a row failure with the stream\'s code and message', () => {
    const { chunk } = parseInferRequest([{ features: CHURN_FEATURES }, { features: { ...CHURN_FEATURES, nps_score: null } }], model);
    expect(chunk.rows).toBe(1);
    expect(chunk.failures.get(1)).toMatchObject({ code: 'INVALID_FEATURE', message: 'features.nps_score is null' });
  });
});
