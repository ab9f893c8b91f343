import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, ToolbarButton } from '@jupyterlab/apputils';
import { DocumentRegistry } from '@jupyterlab/docregistry';
import {
  INotebookModel,
  INotebookTracker,
  NotebookPanel
} from '@jupyterlab/notebook';
import { ServerConnection } from '@jupyterlab/services';
import { DisposableDelegate, IDisposable } from '@lumino/disposable';
import { Widget } from '@lumino/widgets';

import { IDialogContent, SubmitDialog } from './dialog';
import {
  calendarPath,
  checkMetadata,
  errorSentence,
  isFinalState,
  IDueView,
  ISubmissionView,
  pollDelayMs
} from './format';
import { RequestFailure, requestAPI } from './request';

const PLUGIN_ID = 'otter-service-submit:plugin';

namespace CommandIDs {
  export const submit = 'otter-service:submit';
  export const showResult = 'otter-service:show-result';
}

/** For how long a submission is checked on at most (how often: `pollDelayMs`). */
const POLL_LIMIT_MS = 15 * 60 * 1000;

interface ISubmitAnswer extends ISubmissionView {
  submission_id?: number;
  status_url?: string;
}

function sleep(ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms));
}

/**
 * The last submission sent from this page: its dialog and the loop following it. A new
 * submission replaces it (the old loop stops at its next turn).
 */
class SubmissionTracker {
  constructor(private readonly _settings: ServerConnection.ISettings) {}

  /** Saves, checks and submits the notebook in `panel`, then follows the submission. */
  async submit(panel: NotebookPanel): Promise<void> {
    if (this._sending) {
      // A second press while the first is being saved and sent: show it, send once.
      this._show();
      return;
    }
    this._sending = true;
    try {
      await this._submit(panel);
    } finally {
      this._sending = false;
    }
  }

  private async _submit(panel: NotebookPanel): Promise<void> {
    const run = ++this._run;
    const context = panel.context;
    const path = context.localPath;
    this._content = { path, view: null, state: null, error: null, due: null };
    this._id = null;
    this._following = false;
    this._show();

    try {
      await context.save();
    } catch (error) {
      this._update(run, {
        state: 'Not sent.',
        error: `Could not save ${path}, so it was not sent: ${String(error)}`
      });
      return;
    }

    const metadata = context.model.toJSON() as { metadata?: unknown };
    const check = checkMetadata(metadata.metadata);
    if (!check.ok) {
      this._update(run, { state: 'Not sent.', error: check.message });
      return;
    }

    // The due date and credit, shown while the notebook is sent (a failure here is not
    // the student's problem: the submission goes on without it).
    void requestAPI<IDueView>(this._settings, calendarPath(check.ids))
      .then(due => {
        if (due && due.state !== 'none') {
          this._update(run, { due: due.sentence });
        }
      })
      .catch(() => undefined);

    let answer: ISubmitAnswer;
    try {
      answer = await requestAPI<ISubmitAnswer>(this._settings, 'submit', {
        method: 'POST',
        body: JSON.stringify({ path })
      });
    } catch (error) {
      this._update(run, { state: 'Not sent.', error: this._sentence(error) });
      return;
    }
    const id = answer.submission_id ?? answer.id;
    this._id = typeof id === 'number' ? id : null;
    this._update(run, { view: answer, state: null, error: null });
    this._sending = false;
    await this._follow(run);
  }

  /** Opens the dialog of the last submission again (and resumes checking on it). */
  showResult(): void {
    if (this._content === null) {
      this._content = {
        path: null,
        view: null,
        state: 'Nothing has been submitted from this page yet.',
        error: null,
        due: null
      };
      this._show();
      return;
    }
    this._show();
    const view = this._content.view;
    if (!this._following && this._id !== null && view !== null && !isFinalState(view.state)) {
      void this._follow(++this._run);
    }
  }

  private async _follow(run: number): Promise<void> {
    if (this._id === null) {
      return;
    }
    const endPoint = `submissions/${this._id}`;
    const deadline = Date.now() + POLL_LIMIT_MS;
    this._following = true;
    try {
      while (run === this._run) {
        const view = this._content?.view;
        if (view && isFinalState(view.state)) {
          return;
        }
        if (Date.now() > deadline) {
          this._update(run, {
            error:
              'Stopped checking after 15 minutes. Your submission is kept: use ' +
              '"Show Grading Result" to check again, or see all your submissions.'
          });
          return;
        }
        await sleep(pollDelayMs(this._content?.view ?? null));
        if (run !== this._run) {
          return;
        }
        try {
          const fresh = await requestAPI<ISubmissionView>(this._settings, endPoint);
          this._update(run, { view: fresh, error: null });
        } catch (error) {
          const status = error instanceof RequestFailure ? error.status : null;
          const transient =
            status === null || status === 429 || status === 502 || status === 503;
          this._update(run, {
            error: transient
              ? `${this._sentence(error)} Still checking…`
              : this._sentence(error)
          });
          if (!transient) {
            return;
          }
        }
      }
    } finally {
      if (run === this._run) {
        this._following = false;
      }
    }
  }

  private _sentence(error: unknown): string {
    if (error instanceof RequestFailure) {
      return errorSentence(error.status, error.body, error.retryAfter);
    }
    return `Something went wrong: ${String(error)}`;
  }

  private _update(run: number, change: Partial<IDialogContent>): void {
    if (run !== this._run || this._content === null) {
      return;
    }
    this._content = { ...this._content, ...change };
    this._dialog?.render(this._content);
  }

  private _show(): void {
    if (this._dialog === null || this._dialog.isDisposed) {
      this._dialog = new SubmitDialog();
    }
    if (this._content !== null) {
      this._dialog.render(this._content);
    }
    this._dialog.open();
  }

  private _run = 0;
  private _sending = false;
  private _id: number | null = null;
  private _following = false;
  private _content: IDialogContent | null = null;
  private _dialog: SubmitDialog | null = null;
}

/** How often the label beside the button is asked again ("due in 3 hours" moves on). */
const DUE_REFRESH_MS = 5 * 60 * 1000;

/**
 * The student's due date beside the Submit button, before they submit: "due in 3 hours",
 * "late: 80% credit for 5 hours" (the whole sentence on hover). Empty for a notebook
 * without grading metadata or an assignment without dates, and when the service cannot
 * be asked (the button works without it).
 */
function dueLabel(panel: NotebookPanel, settings: ServerConnection.ISettings): Widget {
  const label = new Widget();
  label.addClass('otter-submit-due-label');
  const refresh = async () => {
    const model = panel.context.model.toJSON() as { metadata?: unknown };
    const check = checkMetadata(model.metadata);
    if (!check.ok) {
      label.node.textContent = '';
      return;
    }
    try {
      const due = await requestAPI<IDueView>(settings, calendarPath(check.ids));
      const show = due.state !== 'none' && typeof due.short === 'string';
      label.node.textContent = show ? (due.short as string) : '';
      label.node.title = show ? due.sentence : '';
    } catch {
      label.node.textContent = '';
    }
  };
  void panel.context.ready.then(refresh);
  const timer = setInterval(() => void refresh(), DUE_REFRESH_MS);
  label.disposed.connect(() => clearInterval(timer));
  return label;
}

/** Adds the Submit button (and the due date beside it) to every notebook's toolbar. */
class SubmitButtonExtension
  implements DocumentRegistry.IWidgetExtension<NotebookPanel, INotebookModel>
{
  constructor(
    private readonly _onSubmit: (panel: NotebookPanel) => void,
    private readonly _settings: ServerConnection.ISettings
  ) {}

  createNew(panel: NotebookPanel): IDisposable {
    const button = new ToolbarButton({
      className: 'otter-submit-button',
      label: 'Submit',
      tooltip: 'Submit this notebook for grading',
      onClick: () => this._onSubmit(panel)
    });
    // Next to the cell type selector in both JupyterLab and Notebook 7; else at the end.
    if (!panel.toolbar.insertAfter('cellType', 'otterServiceSubmit', button)) {
      panel.toolbar.addItem('otterServiceSubmit', button);
    }
    const due = dueLabel(panel, this._settings);
    panel.toolbar.insertAfter('otterServiceSubmit', 'otterServiceDue', due);
    return new DisposableDelegate(() => {
      button.dispose();
      due.dispose();
    });
  }
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'Submit the open notebook to otter-service for grading.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    palette: ICommandPalette | null
  ) => {
    const submissions = new SubmissionTracker(app.serviceManager.serverSettings);
    const submit = (panel: NotebookPanel) => {
      void submissions.submit(panel);
    };

    app.commands.addCommand(CommandIDs.submit, {
      label: 'Submit for Grading',
      caption: 'Submit this notebook for grading',
      isEnabled: () => tracker.currentWidget !== null,
      execute: () => {
        const panel = tracker.currentWidget;
        if (panel) {
          submit(panel);
        }
      }
    });
    app.commands.addCommand(CommandIDs.showResult, {
      label: 'Show Grading Result',
      caption: 'Show the result of the last submission from this page',
      execute: () => submissions.showResult()
    });
    if (palette) {
      const category = 'Grading';
      palette.addItem({ command: CommandIDs.submit, category });
      palette.addItem({ command: CommandIDs.showResult, category });
    }
    app.docRegistry.addWidgetExtension('Notebook', new SubmitButtonExtension(submit, app.serviceManager.serverSettings));
  }
};

export default plugin;
