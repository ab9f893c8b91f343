import { Widget } from '@lumino/widgets';

import {
  countsSentence,
  creditSentence,
  dueSentence,
  edxSentence,
  formatNumber,
  formatScore,
  gradeFraction,
  ISubmissionView,
  scoreClass,
  splitFeedback,
  stateSentence
} from './format';

/** What the dialog shows; every field may change while a submission is followed. */
export interface IDialogContent {
  /** The notebook this is about. */
  path: string | null;
  /** The submission as the service last showed it (null before the service answered). */
  view: ISubmissionView | null;
  /** Replaces the sentence derived from `view` (e.g. "Not sent."). */
  state: string | null;
  /** An error sentence, shown in `.otter-submit-error`. */
  error: string | null;
  /** The student's due-date sentence, asked for before the notebook is sent. */
  due: string | null;
}

function element<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className: string | null,
  text?: string
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

/**
 * A small floating panel (not modal): the student can keep working, close it, and open it
 * again with "Show Grading Result". Works the same in JupyterLab and Notebook 7.
 */
export class SubmitDialog extends Widget {
  constructor() {
    super();
    this.addClass('otter-submit-dialog');
    this.node.setAttribute('role', 'dialog');
    this.node.setAttribute('aria-label', 'Grading result');
    this.node.tabIndex = -1;

    const header = element('div', 'otter-submit-header');
    this._title = element('span', 'otter-submit-title', 'Submission');
    const close = element('button', 'otter-submit-close', '×');
    close.type = 'button';
    close.title = 'Close (your submission is kept; reopen it with Show Grading Result)';
    close.setAttribute('aria-label', 'Close');
    close.addEventListener('click', () => this.close());
    header.append(this._title, close);

    this._body = element('div', 'otter-submit-body');
    this.node.append(header, this._body);
    this.node.addEventListener('keydown', event => {
      if (event.key === 'Escape') {
        this.close();
      }
    });
  }

  /** Shows the panel (again). */
  open(): void {
    if (!this.isAttached) {
      Widget.attach(this, document.body);
    }
    this.node.focus();
  }

  /** Hides the panel; it can be opened again. */
  close(): void {
    if (this.isAttached) {
      Widget.detach(this);
    }
  }

  /** Renders `content` (the whole body is rebuilt: it is small). */
  render(content: IDialogContent): void {
    const view = content.view;
    const what = view?.assignment ?? null;
    const title =
      view !== null
        ? `Submission ${view.submission_id ?? view.id}${what ? ` of ${what}` : ''}`
        : content.path
          ? `Submitting ${content.path}`
          : 'Submission';
    this._title.textContent = title;

    const body = this._body;
    body.textContent = '';
    body.append(element('p', 'otter-submit-state', content.state ?? stateSentence(view)));
    const due = dueSentence(view, content.due);
    if (due !== null) {
      body.append(element('p', 'otter-submit-due', due));
    }
    if (content.error) {
      const error = element('p', 'otter-submit-error', content.error);
      error.setAttribute('role', 'alert');
      body.append(error);
    }

    const grade = view?.grade ?? null;
    if (view !== null && view.state === 'graded' && grade !== null) {
      const score = element('p', 'otter-submit-score', formatScore(grade));
      score.classList.add(scoreClass(gradeFraction(grade)));
      body.append(score);
      const credit = creditSentence(view);
      if (credit !== null) {
        body.append(element('p', 'otter-submit-credit', credit));
      }
      if (grade.message) {
        body.append(element('p', 'otter-submit-grade-message', grade.message));
      }
      const questions = grade.questions ?? [];
      if (questions.length > 0) {
        const table = element('table', 'otter-submit-questions');
        const head = table.createTHead().insertRow();
        head.append(element('th', null, 'Question'), element('th', null, 'Score'));
        const rows = table.createTBody();
        for (const question of questions) {
          const row = rows.insertRow();
          row.append(
            element('td', null, question.name),
            element(
              'td',
              null,
              `${formatNumber(question.score)} / ${formatNumber(question.max_score)}`
            )
          );
          const full =
            typeof question.score === 'number' &&
            typeof question.max_score === 'number' &&
            question.score >= question.max_score;
          row.classList.add(full ? 'otter-question-full' : 'otter-question-partial');
        }
        body.append(table);
      }
      const counts = countsSentence(grade.counts);
      if (counts !== null) {
        body.append(element('p', 'otter-submit-counts', counts));
      }
      const edx = edxSentence(grade.post_state);
      if (edx !== null) {
        body.append(element('p', 'otter-submit-edx', edx));
      }
      const blocks = splitFeedback(grade.public_feedback);
      if (blocks.length > 0) {
        const feedback = element('div', 'otter-submit-feedback');
        feedback.append(element('div', 'otter-submit-feedback-title', 'Feedback'));
        for (const block of blocks) {
          const pre = element('pre', 'otter-submit-feedback-block', block.text);
          if (block.question !== null) {
            pre.dataset.question = block.question;
          }
          feedback.append(pre);
        }
        body.append(feedback);
      }
    }

    if (view?.url) {
      const link = element('a', 'otter-submit-link', 'See all your submissions');
      link.href = view.url;
      link.target = '_blank';
      link.rel = 'noopener noreferrer';
      body.append(element('p', null), link);
    }
  }

  private _title: HTMLSpanElement;
  private _body: HTMLDivElement;
}
