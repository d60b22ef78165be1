import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { ApiError } from '../src/api';
import { RowEvent, TableWatcher, WatchState } from '../src/watch';
import { FAST, FakeFetch, Stream, statusError, until } from './fakefetch';

const URL = '/clusters/c1/k8s/apis/guildnet.io/v1alpha1/namespaces/ns/tables/db.t/watch';

let fake: FakeFetch;
afterEach(() => fake?.restore());

function recorder() {
  const r = {
    events: [] as RowEvent[],
    fresh: 0,
    states: [] as { state: WatchState; code?: number }[],
    handlers: {
      onEvent: (ev: RowEvent) => void r.events.push(ev),
      onFresh: () => void r.fresh++,
      onState: (state: WatchState, err?: ApiError) => void r.states.push({ state, code: err?.code }),
    },
  };
  return r;
}

test('resumes after a BOOKMARK, and starts afresh after 410', async () => {
  const first = new Stream([
    { type: 'ADDED', new: { id: 'a' }, resumeToken: 't1' },
    { type: 'BOOKMARK', resumeToken: 't2' },
  ]);
  const third = new Stream();
  fake = new FakeFetch()
    .on(/watch/, () => first.response)
    .on(/watch/, () => statusError(410, 'Expired', 'resume token too old; reload with includeInitial=true'))
    .on(/watch/, () => third.response)
    .install();
  const r = recorder();
  const w = new TableWatcher(URL, r.handlers, FAST);
  w.start();
  first.end();
  await until(() => fake.calls.length === 3 && r.fresh === 2, 'the third connection');
  assert.equal(fake.calls[0], URL);
  assert.equal(fake.calls[1], `${URL}?resumeToken=t2`, 'reconnects with the BOOKMARK token');
  assert.equal(fake.calls[2], URL, 'after 410 the token is dropped');
  assert.deepEqual(
    r.events.map((e) => e.type),
    ['ADDED'],
  );
  assert.ok(r.states.some((s) => s.state === 'reconnecting' && s.code === 410), 'reports the resync');
  assert.equal(r.states[r.states.length - 1].state, 'live');
  w.stop();
  third.end();
});

test('an in-band ERROR reconnects with its resume token, without reloading', async () => {
  const first = new Stream([
    { type: 'MODIFIED', old: { id: 'a' }, new: { id: 'a', v: 2 }, resumeToken: 't5' },
    {
      type: 'ERROR',
      object: { kind: 'Status', code: 429, reason: 'TooManyRequests', message: 'watcher too slow' },
      resumeToken: 't5',
    },
  ]);
  const second = new Stream([{ type: 'DELETED', old: { id: 'a' }, resumeToken: 't6' }]);
  fake = new FakeFetch()
    .on(/watch/, () => first.response)
    .on(/watch/, () => second.response)
    .install();
  const r = recorder();
  const w = new TableWatcher(URL, r.handlers, FAST);
  w.start();
  first.end();
  await until(() => r.events.length === 2, 'the event of the second stream');
  assert.equal(fake.calls[1], `${URL}?resumeToken=t5`);
  assert.equal(r.fresh, 1, 'a resumed stream does not reload');
  assert.ok(r.states.some((s) => s.state === 'reconnecting' && s.code === 429));
  w.stop();
  second.end();
});

test('a refused watch backs off and shows the Status', async () => {
  const ok = new Stream();
  fake = new FakeFetch()
    .on(/watch/, () => statusError(403, 'Forbidden', 'cannot get tables/watch'))
    .on(/watch/, () => ok.response)
    .install();
  const r = recorder();
  const w = new TableWatcher(URL, r.handlers, FAST);
  w.start();
  await until(() => r.states.some((s) => s.state === 'live'), 'live');
  assert.deepEqual(r.states.slice(0, 3), [{ state: 'connecting', code: undefined }, { state: 'reconnecting', code: 403 }, { state: 'live', code: undefined }]);
  w.stop();
  ok.end();
});
