/** What score-file needs from a file format: feature rows in, scored events out, both streamed. */
import type { DecodedChunk } from '../../stages/decode/row-decoder.js';
import type { ScoredEvent } from '../../stages/encode.js';

export interface FeatureFile {
  /** Decoded chunks of at most `maxRecords` records, in file order (record i of the file = `first + i`). */
  chunks(maxRecords: number): AsyncIterable<DecodedChunk & { first: number; count: number }>;
  /** Share of the file read so far, 0..1 (bytes or rows), for the progress bar's ETA. */
  fraction(): number;
  close(): Promise<void>;
}

export interface ScoredFile {
  /** Appends scored events; resolves once they are buffered within the writer's bound. */
  write(events: readonly ScoredEvent[]): Promise<void>;
  /** Flushes and closes the file (footer, last block). */
  close(): Promise<void>;
}
