/**
 * The live phase's load generator in a worker thread of the bench process: the latency reader
 * (output.ts) then has the main event loop to itself, so a fetch reaching the reader is timed
 * when it arrives, not when the generator's next burst of encoding and sending lets it run.
 * Both still count as the bench's CPU (one process). Started by scenario.ts with `spawnModule`.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { type ProduceOptions, produceEvents } from '../../scripts/produce.js';

const summary = await produceEvents(workerData as ProduceOptions);
parentPort?.postMessage(summary);
