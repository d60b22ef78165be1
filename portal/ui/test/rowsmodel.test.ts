import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { K8s, Row } from '../src/api';
import { RowsModel, compareKeys } from '../src/rowsmodel';
import { FAST, FakeFetch, Stream, json, until } from './fakefetch';

let fake: FakeFetch;
afterEach(() => fake?.restore());

const keys = (m: RowsModel) => m.rows.map((r) => r.id);

test('compareKeys orders like RethinkDB: numbers, then strings', () => {
  const ks = ['b', 10, 'a', 2, 'B'];
  assert.deepEqual(ks.sort(compareKeys), [2, 10, 'B', 'a', 'b']);
});

test('live events update the page: queued during a load, kept within its key range', async () => {
  const watch = new Stream();
  let release: (() => void) | undefined;
  const page = (items: Row[], cont: string) => () =>
    new Promise<Response>((resolve) => {
      release = () => resolve(json({ kind: 'RowList', metadata: { continue: cont }, items }));
    });
  fake = new FakeFetch()
    .on(/\/rows\?/, page([{ id: 'b' }, { id: 'd' }], 'NEXT'))
    .on(/\/rows\?/, page([{ id: 'b' }, { id: 'd' }], 'NEXT'))
    .on(/\/watch/, () => watch.response)
    .install();
  const m = new RowsModel(new K8s('c1'), 'ns', 'db.t', 'id', FAST);
  m.start(() => {});
  // The watch opened without a token: the model loads again (second rows call).
  await until(() => fake.calls.filter((u) => u.includes('/rows?')).length === 2, 'the reload on a fresh watch');
  assert.match(fake.calls[0], /\/tables\/db\.t\/rows\?limit=50$/);
  watch.push({ type: 'ADDED', new: { id: 'c' }, resumeToken: '1' });
  await until(() => m.recent.length === 1, 'the event');
  assert.deepEqual(keys(m), [], 'not applied while the page loads');
  release!();
  await until(() => m.loaded, 'the page');
  assert.deepEqual(keys(m), ['b', 'c', 'd'], 'queued event applied after the load, in key order');

  watch.push({ type: 'ADDED', new: { id: 'e' }, resumeToken: '2' });
  watch.push({ type: 'ADDED', new: { id: 'a' }, resumeToken: '3' });
  watch.push({ type: 'MODIFIED', old: { id: 'b' }, new: { id: 'b', v: 2 }, resumeToken: '4' });
  watch.push({ type: 'DELETED', old: { id: 'c' }, resumeToken: '5' });
  await until(() => m.recent.length === 5, 'four more events');
  assert.deepEqual(keys(m), ['a', 'b', 'd'], '"e" is past the last key of a page that has a next one');
  assert.deepEqual(m.rows[1], { id: 'b', v: 2 });
  assert.equal(m.recent[3].here, false, 'the change of "e" is listed as not on this page');
  assert.equal(m.watchState, 'live');
  m.stop();
  watch.end();
});

test('numeric keys are addressed with keyType=number', () => {
  const k = new K8s('c 1');
  assert.equal(
    k.rowsURL('ns', 'db.t', 42),
    '/clusters/c%201/k8s/apis/guildnet.io/v1alpha1/namespaces/ns/tables/db.t/rows/42?keyType=number',
  );
  assert.equal(
    k.rowsURL('ns', 'db.t', 'a/b c'),
    '/clusters/c%201/k8s/apis/guildnet.io/v1alpha1/namespaces/ns/tables/db.t/rows/a%2Fb%20c',
  );
});
