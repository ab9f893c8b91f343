// Unit tests of src/format.ts, run with Node's built-in runner: `jlpm test`.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  calendarPath,
  checkMetadata,
  countsSentence,
  creditSentence,
  dueSentence,
  edxSentence,
  errorSentence,
  formatNumber,
  formatScore,
  formatWait,
  gradeFraction,
  isFinalState,
  ISubmissionView,
  ordinal,
  parseRetryAfter,
  pollDelayMs,
  scoreClass,
  splitFeedback,
  stateSentence,
  stripAnsi
} from '../src/format';

function view(change: Partial<ISubmissionView>): ISubmissionView {
  return {
    id: 12,
    state: 'queued',
    message: null,
    url: 'http://hub/services/otter_grade/submissions/12',
    queue: null,
    grade: null,
    ...change
  };
}

describe('checkMetadata', () => {
  test('reads metadata.otter_service', () => {
    const check = checkMetadata({
      otter_service: { course: '8x', section: '1', assignment: 'lab01' }
    });
    assert.deepEqual(check, {
      ok: true,
      ids: { course: '8x', section: '1', assignment: 'lab01' }
    });
  });

  test('falls back to top-level course, section and lab or assignment', () => {
    assert.deepEqual(checkMetadata({ course: '8x', section: 2, lab: 'lab02' }), {
      ok: true,
      ids: { course: '8x', section: '2', assignment: 'lab02' }
    });
    assert.deepEqual(checkMetadata({ course: '8x', section: '1', assignment: 'hw1' }), {
      ok: true,
      ids: { course: '8x', section: '1', assignment: 'hw1' }
    });
  });

  test('names everything missing when the metadata is empty', () => {
    const check = checkMetadata({ kernelspec: { name: 'python3' } });
    assert.equal(check.ok, false);
    assert.equal(
      !check.ok && check.message,
      'This notebook is not set up for grading: its metadata has no course, section or ' +
        'assignment. Ask course staff for the assignment notebook.'
    );
    assert.deepEqual(!check.ok && check.missing, ['course', 'section', 'assignment']);
  });

  test('names only what is missing, and treats blank strings as missing', () => {
    const check = checkMetadata({ otter_service: { course: '8x', section: ' ' }, lab: 'lab1' });
    assert.equal(check.ok, false);
    assert.match(!check.ok ? check.message : '', /its metadata has no section\. Ask course staff/);
    const two = checkMetadata({ course: '8x' });
    assert.match(!two.ok ? two.message : '', /has no section or assignment\./);
  });

  test('copes with metadata that is not an object', () => {
    assert.equal(checkMetadata(null).ok, false);
    assert.equal(checkMetadata('lab01').ok, false);
    assert.equal(checkMetadata({ otter_service: 'x' }).ok, false);
  });
});

test('ordinal', () => {
  const cases: [number, string][] = [
    [1, '1st'], [2, '2nd'], [3, '3rd'], [4, '4th'], [11, '11th'], [12, '12th'],
    [13, '13th'], [21, '21st'], [22, '22nd'], [23, '23rd'], [101, '101st'], [111, '111th']
  ];
  for (const [n, text] of cases) {
    assert.equal(ordinal(n), text);
  }
});

test('formatWait', () => {
  assert.equal(formatWait(20), 'about 20 seconds');
  assert.equal(formatWait(12.5), 'about 15 seconds');
  assert.equal(formatWait(1), 'about 5 seconds');
  assert.equal(formatWait(70), 'about a minute');
  assert.equal(formatWait(300), 'about 5 minutes');
  assert.equal(formatWait(0), null);
  assert.equal(formatWait(null), null);
});

describe('stateSentence', () => {
  test('queued with position and wait', () => {
    assert.equal(
      stateSentence(view({ state: 'queued', queue: { position: 3, expected_wait_secs: 20 } })),
      'Waiting to be graded: 3rd in line, about 20 seconds.'
    );
    assert.equal(
      stateSentence(view({ state: 'queued', queue: { position: 1, expected_wait_secs: null } })),
      'Waiting to be graded: 1st in line.'
    );
    assert.equal(stateSentence(view({ state: 'queued' })), 'Waiting to be graded.');
  });

  test('other states', () => {
    assert.equal(stateSentence(null), 'Sending…');
    assert.equal(
      stateSentence(view({ state: 'grading', queue: { position: 0, expected_wait_secs: 5 } })),
      'Being graded now…'
    );
    assert.equal(stateSentence(view({ state: 'graded' })), 'Graded.');
    assert.equal(
      stateSentence(view({ state: 'failed', message: 'The notebook took too long.' })),
      'The notebook took too long.'
    );
    assert.match(stateSentence(view({ state: 'dead' })), /could not be graded/);
  });

  test('isFinalState', () => {
    assert.deepEqual(
      ['queued', 'grading', 'graded', 'failed', 'dead'].map(isFinalState),
      [false, false, true, true, true]
    );
  });
});

describe('scores', () => {
  test('formatScore drops trailing .0', () => {
    assert.equal(formatScore({ score: 3.0, max_score: 5.0 }), 'Score: 3 / 5');
    assert.equal(formatScore({ score: 2.5, max_score: 5 }), 'Score: 2.5 / 5');
    assert.equal(formatNumber(1 / 3), '0.33');
    assert.equal(formatNumber(null), '?');
  });

  test('fraction and colour class', () => {
    assert.equal(gradeFraction({ score: 3, max_score: 5, fraction: 0.6 }), 0.6);
    assert.equal(gradeFraction({ score: 1, max_score: 4, fraction: null }), 0.25);
    assert.equal(gradeFraction({ score: 0, max_score: 0, fraction: null }), null);
    assert.equal(scoreClass(1), 'otter-score-full');
    assert.equal(scoreClass(0.6), 'otter-score-partial');
    assert.equal(scoreClass(0), 'otter-score-zero');
    assert.equal(scoreClass(null), 'otter-score-unknown');
  });
});

test('edxSentence for every post_state', () => {
  assert.equal(edxSentence('posted'), 'Your score has reached edX.');
  assert.equal(edxSentence('pending'), 'Your score is on its way to edX.');
  assert.equal(
    edxSentence('dead'),
    'Your score could not be sent to edX; course staff can see this.'
  );
  assert.match(edxSentence('superseded') ?? '', /Another submission's score is the one edX holds/);
  assert.equal(edxSentence('not_configured'), "This assignment's score is not sent to edX.");
  assert.equal(edxSentence(null), null);
});

test('countsSentence', () => {
  assert.equal(countsSentence(true), 'This grade counts for the assignment.');
  assert.equal(countsSentence(false), 'This grade does not count for the assignment.');
  assert.equal(countsSentence(null), null);
});

describe('errorSentence', () => {
  test('503 and 429 ask to try again in N seconds', () => {
    assert.equal(
      errorSentence(503, { error: 'queue full', retry_after: 30 }),
      'The grading service is busy right now. Your notebook is saved; please try again in 30 seconds.'
    );
    assert.equal(
      errorSentence(429, { error: 'slow down', retry_after: null }, 7),
      'The grading service is busy right now. Your notebook is saved; please try again in 7 seconds.'
    );
    assert.match(errorSentence(503, null), /please try again in a minute\.$/);
  });

  test('other errors show the error sentence', () => {
    assert.equal(
      errorSentence(403, { error: 'The grading service did not accept this token.' }),
      'The grading service did not accept this token.'
    );
    assert.equal(errorSentence(403, { message: "'_xsrf' argument missing from POST" }),
      "'_xsrf' argument missing from POST");
    assert.match(errorSentence(500, 'nonsense'), /HTTP 500/);
  });

  test('network failure names the Jupyter server', () => {
    assert.match(errorSentence(null, null), /^Could not reach your Jupyter server\./);
  });
});

test('parseRetryAfter', () => {
  assert.equal(parseRetryAfter('30'), 30);
  assert.equal(parseRetryAfter(null), null);
  assert.equal(parseRetryAfter('soon'), null);
  const now = Date.parse('2026-11-24T13:40:00Z');
  assert.equal(parseRetryAfter('Tue, 24 Nov 2026 13:40:20 GMT', now), 20);
});

describe('feedback', () => {
  test('stripAnsi removes colour codes and OSC sequences', () => {
    assert.equal(stripAnsi('\u001b[0;31mFailed\u001b[0m: q1'), 'Failed: q1');
    assert.equal(stripAnsi('\u001b]0;title\u0007text'), 'text');
    assert.equal(stripAnsi('plain'), 'plain');
  });

  test('splitFeedback makes one block per question', () => {
    const blocks = splitFeedback(
      'q1 results: All test cases passed!\n\nq2 results:\n    \u001b[31mq2 - 1\u001b[0m failed\n' +
        '    Trying:\n        x\r\n'
    );
    assert.deepEqual(
      blocks.map(block => block.question),
      ['q1', 'q2']
    );
    assert.equal(blocks[0].text, 'q1 results: All test cases passed!');
    assert.equal(blocks[1].text, 'q2 results:\n    q2 - 1 failed\n    Trying:\n        x');
    assert.deepEqual(splitFeedback(null), []);
    assert.deepEqual(
      splitFeedback('Some preface\nq1 results: ok').map(b => b.question),
      [null, 'q1']
    );
  });
});

test('pollDelayMs: often when next, a tenth of a long wait further back', () => {
  assert.equal(pollDelayMs(null), 2000);
  assert.equal(pollDelayMs(view({ queue: { position: 1, expected_wait_secs: 300 } })), 2000);
  assert.equal(pollDelayMs(view({ state: 'grading', queue: { position: 0, expected_wait_secs: 90 } })), 2000);
  assert.equal(pollDelayMs(view({ queue: { position: 40, expected_wait_secs: 60 } })), 6000);
  assert.equal(pollDelayMs(view({ queue: { position: 900, expected_wait_secs: 1800 } })), 15000);
  assert.equal(pollDelayMs(view({ queue: { position: 5, expected_wait_secs: null } })), 2000);
  assert.equal(pollDelayMs(view({ queue: { position: 3, expected_wait_secs: 4 } })), 2000);
});

describe('the course calendar in the panel', () => {
  const graded = (credit: number | null): ISubmissionView => ({
    id: 1,
    state: 'graded',
    message: null,
    url: null,
    queue: null,
    credit,
    grade: {
      status: 'graded',
      score: 3,
      max_score: 5,
      fraction: 0.6,
      questions: [],
      public_feedback: null,
      message: null,
      graded_at: null,
      post_state: null,
      post_detail: null,
      counts: true
    }
  });

  test('late credit says what counts, and nothing on time or without a calendar', () => {
    assert.equal(creditSentence(graded(80)), 'With 80% credit, 2.4 / 5 counts.');
    assert.equal(creditSentence(graded(100)), null);
    assert.equal(creditSentence(graded(null)), null);
  });

  test("the view's due sentence wins over the one asked for before sending", () => {
    const view = graded(100);
    assert.equal(dueSentence(null, 'Due soon.'), 'Due soon.');
    view.due = { state: 'late', due: null, credit_now: 80, sentence: 'Late: 80%.' };
    assert.equal(dueSentence(view, 'Due soon.'), 'Late: 80%.');
    view.due = { state: 'none', due: null, credit_now: null, sentence: 'No due date.' };
    assert.equal(dueSentence(view, null), null);
  });

  test('the calendar path names the assignment, each name encoded', () => {
    assert.equal(
      calendarPath({ course: 'demo', section: '1', assignment: 'lab 01/x' }),
      'calendar/demo/1/lab%2001%2Fx'
    );
  });

  test('held results say so instead of "Graded."', () => {
    const held: ISubmissionView = {
      ...graded(null),
      grade: null,
      results_held: true,
      message: 'Graded. Your results are shown when course staff release them.'
    };
    assert.equal(stateSentence(held), held.message);
  });
});
