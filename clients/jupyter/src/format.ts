// Pure logic of the Submit button: no @jupyterlab imports here, so test/*.test.ts can run
// it under plain Node.

/** Where the submission waits, from the grading service. Position 0 while grading. */
export interface IQueueInfo {
  position: number | null;
  expected_wait_secs: number | null;
}

export interface IQuestionGrade {
  name: string;
  score: number | null;
  max_score: number | null;
}

export type PostState =
  | 'not_configured'
  | 'pending'
  | 'posted'
  | 'dead'
  | 'superseded';

export interface IGrade {
  status: 'graded' | 'timeout' | 'out_of_memory' | 'no_results' | string;
  score: number | null;
  max_score: number | null;
  fraction: number | null;
  questions: IQuestionGrade[] | null;
  public_feedback: string | null;
  message: string | null;
  graded_at: string | null;
  post_state: PostState | string | null;
  post_detail: string | null;
  counts: boolean | null;
}

export type SubmissionState = 'queued' | 'grading' | 'graded' | 'failed' | 'dead';

/** The student's calendar for an assignment (`GET calendar/...`, and `due` in a view). */
export interface IDueView {
  /** none, not_yet, open, late or closed. */
  state: string;
  due: string | null;
  credit_now: number | null;
  results_held?: boolean;
  /** All of it in one sentence: what the panel shows. */
  sentence: string;
  /** A few words for beside the Submit button ("due in 3 hours"). */
  short?: string;
}

/** One submission as the grading service shows it (also the body of the 202). */
export interface ISubmissionView {
  id: number;
  submission_id?: number;
  status_url?: string;
  user?: string;
  course?: string;
  section?: string;
  assignment?: string;
  received_at?: string;
  state: SubmissionState | string;
  message: string | null;
  url: string | null;
  queue: IQueueInfo | null;
  grade: IGrade | null;
  /** Late credit (percent) of this submission, when the assignment has a calendar. */
  credit?: number | null;
  late_secs?: number | null;
  /** Results wait for course staff to release them (`grade` is left out until then). */
  results_held?: boolean;
  due?: IDueView | null;
}

export interface IAssignmentIds {
  course: string;
  section: string;
  assignment: string;
}

export type MetadataCheck =
  | { ok: true; ids: IAssignmentIds }
  | { ok: false; missing: string[]; message: string };

/**
 * How long to wait before checking on a submission again: every 2 s while it is next or
 * being graded, and a tenth of the expected wait (at most 15 s) while it is further back,
 * so a thousand students waiting before a deadline do not ask the service 500 times a
 * second how long the queue is.
 */
export function pollDelayMs(view: ISubmissionView | null): number {
  const MIN = 2000;
  const MAX = 15000;
  const queue = view?.queue;
  if (!queue || queue.position === null || queue.position <= 1) {
    return MIN;
  }
  const wait = queue.expected_wait_secs;
  if (typeof wait !== 'number' || !Number.isFinite(wait)) {
    return MIN;
  }
  return Math.min(MAX, Math.max(MIN, Math.round((wait * 1000) / 10)));
}

/** States after which the submission does not change any more. */
export function isFinalState(state: string): boolean {
  return state === 'graded' || state === 'failed' || state === 'dead';
}

function idValue(value: unknown): string | null {
  if (typeof value === 'string') {
    const trimmed = value.trim();
    return trimmed === '' ? null : trimmed;
  }
  if (typeof value === 'number' && Number.isFinite(value)) {
    return String(value);
  }
  return null;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** "a", "a or b", "a, b or c". */
export function joinOr(words: string[]): string {
  if (words.length <= 1) {
    return words.join('');
  }
  return `${words.slice(0, -1).join(', ')} or ${words[words.length - 1]}`;
}

/**
 * Which course, section and assignment a notebook belongs to, from its metadata:
 * `metadata.otter_service.{course, section, assignment}`, else the top-level
 * `metadata.{course, section, lab | assignment}`. The server extension applies the same
 * rule (otter_service_submit/handlers.py).
 */
export function checkMetadata(metadata: unknown): MetadataCheck {
  const top = isObject(metadata) ? metadata : {};
  const own = isObject(top.otter_service) ? top.otter_service : {};
  const pick = (...values: unknown[]): string | null => {
    for (const value of values) {
      const id = idValue(value);
      if (id !== null) {
        return id;
      }
    }
    return null;
  };
  const course = pick(own.course, top.course);
  const section = pick(own.section, top.section);
  const assignment = pick(own.assignment, top.lab, top.assignment);
  const missing: string[] = [];
  if (course === null) {
    missing.push('course');
  }
  if (section === null) {
    missing.push('section');
  }
  if (assignment === null) {
    missing.push('assignment');
  }
  if (course === null || section === null || assignment === null) {
    return {
      ok: false,
      missing,
      message:
        `This notebook is not set up for grading: its metadata has no ${joinOr(missing)}. ` +
        'Ask course staff for the assignment notebook.'
    };
  }
  return { ok: true, ids: { course, section, assignment } };
}

/** 1st, 2nd, 3rd, 4th, ..., 11th, 12th, 13th, ..., 21st, 22nd, ... */
export function ordinal(n: number): string {
  const whole = Math.round(n);
  const lastTwo = Math.abs(whole) % 100;
  const last = Math.abs(whole) % 10;
  let suffix = 'th';
  if (lastTwo < 11 || lastTwo > 13) {
    suffix = last === 1 ? 'st' : last === 2 ? 'nd' : last === 3 ? 'rd' : 'th';
  }
  return `${whole}${suffix}`;
}

/** "about 15 seconds", "about 2 minutes"; null when there is no useful estimate. */
export function formatWait(secs: number | null | undefined): string | null {
  if (typeof secs !== 'number' || !Number.isFinite(secs) || secs <= 0) {
    return null;
  }
  if (secs < 60) {
    const rounded = Math.max(5, Math.ceil(secs / 5) * 5);
    return rounded >= 60 ? 'about a minute' : `about ${rounded} seconds`;
  }
  if (secs < 3600) {
    const minutes = Math.round(secs / 60);
    return minutes <= 1 ? 'about a minute' : `about ${minutes} minutes`;
  }
  const hours = Math.round(secs / 3600);
  return hours <= 1 ? 'about an hour' : `about ${hours} hours`;
}

/** One sentence for where a submission is. */
export function stateSentence(view: ISubmissionView | null): string {
  if (view === null) {
    return 'Sending…';
  }
  switch (view.state) {
    case 'queued': {
      const position = view.queue?.position;
      const wait = formatWait(view.queue?.expected_wait_secs);
      let sentence = 'Waiting to be graded';
      const parts: string[] = [];
      if (typeof position === 'number' && position >= 1) {
        parts.push(`${ordinal(position)} in line`);
      }
      if (wait !== null) {
        parts.push(wait);
      }
      if (parts.length > 0) {
        sentence += `: ${parts.join(', ')}`;
      }
      return `${sentence}.`;
    }
    case 'grading':
      return 'Being graded now…';
    case 'graded':
      return view.results_held && view.message ? view.message : 'Graded.';
    case 'failed':
      return view.message || 'Grading failed.';
    case 'dead':
      return (
        view.message ||
        'This submission could not be graded; course staff can see what went wrong.'
      );
    default:
      return view.message || `State: ${view.state}.`;
  }
}

/** 3 -> "3", 2.5 -> "2.5", 1/3 -> "0.33" (no trailing zeros). */
export function formatNumber(value: number | null | undefined): string {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    return '?';
  }
  const rounded = Math.round(value * 100) / 100;
  return String(Object.is(rounded, -0) ? 0 : rounded);
}

/** "Score: 3 / 5". */
export function formatScore(grade: Pick<IGrade, 'score' | 'max_score'>): string {
  return `Score: ${formatNumber(grade.score)} / ${formatNumber(grade.max_score)}`;
}

/**
 * What late credit does to a graded submission's score: "With 80% credit, 2.4 / 5
 * counts."; null on time or without a calendar.
 */
export function creditSentence(view: ISubmissionView | null): string | null {
  const credit = view?.credit;
  const grade = view?.grade;
  if (typeof credit !== 'number' || credit >= 100 || !grade || typeof grade.score !== 'number') {
    return null;
  }
  return `With ${formatNumber(credit)}% credit, ${formatNumber((grade.score * credit) / 100)} / ${formatNumber(grade.max_score)} counts.`;
}

/** The calendar path of the server extension for an assignment. */
export function calendarPath(ids: IAssignmentIds): string {
  return `calendar/${[ids.course, ids.section, ids.assignment].map(encodeURIComponent).join('/')}`;
}

/** The due-date sentence to show: the view's own, else the one asked for before sending. */
export function dueSentence(view: ISubmissionView | null, asked: string | null): string | null {
  const own = view?.due?.sentence;
  if (typeof own === 'string' && own.trim() !== '' && view?.due?.state !== 'none') {
    return own;
  }
  return asked;
}

/** The grade's fraction, computed from score and max_score when the service sent none. */
export function gradeFraction(
  grade: Pick<IGrade, 'score' | 'max_score' | 'fraction'>
): number | null {
  if (typeof grade.fraction === 'number' && Number.isFinite(grade.fraction)) {
    return grade.fraction;
  }
  if (
    typeof grade.score === 'number' &&
    typeof grade.max_score === 'number' &&
    grade.max_score > 0
  ) {
    return grade.score / grade.max_score;
  }
  return null;
}

/** CSS class colouring the score: full (green), partial (amber), zero (red). */
export function scoreClass(fraction: number | null): string {
  if (fraction === null) {
    return 'otter-score-unknown';
  }
  if (fraction >= 1 - 1e-9) {
    return 'otter-score-full';
  }
  if (fraction <= 1e-9) {
    return 'otter-score-zero';
  }
  return 'otter-score-partial';
}

/** Whether this grade counts, as a sentence; null when the service did not say. */
export function countsSentence(counts: boolean | null | undefined): string | null {
  if (counts === true) {
    return 'This grade counts for the assignment.';
  }
  if (counts === false) {
    return 'This grade does not count for the assignment.';
  }
  return null;
}

/** Where the score is on its way to edX, as a sentence. */
export function edxSentence(postState: string | null | undefined): string | null {
  switch (postState) {
    case 'posted':
      return 'Your score has reached edX.';
    case 'pending':
      return 'Your score is on its way to edX.';
    case 'dead':
      return 'Your score could not be sent to edX; course staff can see this.';
    case 'superseded':
      return "Another submission's score is the one edX holds for this assignment.";
    case 'not_configured':
      return "This assignment's score is not sent to edX.";
    default:
      return null;
  }
}

/** Seconds from a Retry-After header (seconds or an HTTP date); null if unusable. */
export function parseRetryAfter(
  header: string | null | undefined,
  now: number = Date.now()
): number | null {
  if (header === null || header === undefined) {
    return null;
  }
  const text = header.trim();
  if (/^\d+$/.test(text)) {
    return parseInt(text, 10);
  }
  const when = Date.parse(text);
  if (Number.isNaN(when)) {
    return null;
  }
  return Math.max(0, Math.ceil((when - now) / 1000));
}

/**
 * The sentence a student sees when a request to our server extension did not succeed.
 * status null: the request never got an answer from the Jupyter server.
 */
export function errorSentence(
  status: number | null,
  body: unknown,
  retryAfterHeader: number | null = null
): string {
  if (status === null) {
    return (
      'Could not reach your Jupyter server. Check your network connection; if your ' +
      'server has stopped, start it again from the Hub, then submit again.'
    );
  }
  const data = isObject(body) ? body : {};
  if (status === 503 || status === 429) {
    let seconds: number | null = null;
    if (typeof data.retry_after === 'number' && Number.isFinite(data.retry_after)) {
      seconds = Math.max(1, Math.ceil(data.retry_after));
    } else if (retryAfterHeader !== null) {
      seconds = Math.max(1, retryAfterHeader);
    }
    const when =
      seconds === null
        ? 'in a minute'
        : `in ${seconds} ${seconds === 1 ? 'second' : 'seconds'}`;
    return `The grading service is busy right now. Your notebook is saved; please try again ${when}.`;
  }
  if (typeof data.error === 'string' && data.error.trim() !== '') {
    return data.error;
  }
  // Jupyter server's own errors (APIHandler.write_error) carry `message`.
  if (typeof data.message === 'string' && data.message.trim() !== '') {
    return data.message;
  }
  return `Submitting did not work (HTTP ${status}). Your notebook is saved; try again, and tell course staff if this goes on.`;
}

// CSI sequences (colours, cursor moves), OSC sequences (titles, links) and lone escapes.
const ANSI_PATTERN =
  // eslint-disable-next-line no-control-regex
  /\u001b\[[0-?]*[ -/]*[@-~]|\u001b\][^\u0007\u001b]*(?:\u0007|\u001b\\)|\u009b[0-?]*[ -/]*[@-~]|\u001b[@-Z\\-_]/g;

/** Text without terminal escape sequences. */
export function stripAnsi(text: string): string {
  return text.replace(ANSI_PATTERN, '');
}

export interface IFeedbackBlock {
  /** The question the block is about ("q1"), or null for text before the first one. */
  question: string | null;
  text: string;
}

/**
 * otter's public feedback split into one block per question: a block starts at a line
 * "<name> results: ..." (ANSI escapes stripped first).
 */
export function splitFeedback(feedback: string | null | undefined): IFeedbackBlock[] {
  if (!feedback) {
    return [];
  }
  const lines = stripAnsi(feedback).replace(/\r\n?/g, '\n').split('\n');
  const blocks: IFeedbackBlock[] = [];
  let current: IFeedbackBlock | null = null;
  for (const line of lines) {
    const match = /^\s*(\S+) results:/.exec(line);
    if (match) {
      current = { question: match[1], text: line };
      blocks.push(current);
    } else if (current === null) {
      current = { question: null, text: line };
      blocks.push(current);
    } else {
      current.text += `\n${line}`;
    }
  }
  return blocks
    .map(block => ({ question: block.question, text: block.text.replace(/\s+$/, '') }))
    .filter(block => block.text.trim() !== '');
}
