import { useState } from "react";
import { useAction } from "../action";
import { ConfirmDialog } from "../components/ConfirmDialog";
import { ProblemNotice } from "../components/ProblemNotice";
import { ScreenHeading } from "../components/ScreenHeading";
import { useLoad } from "../load";
import { useServices } from "../services";

function download(name: string, data: unknown): void {
  const url = URL.createObjectURL(new Blob([JSON.stringify(data, null, 2)], { type: "application/json" }));
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  URL.revokeObjectURL(url);
}

export function AccountScreen({ onClosed }: { onClosed: () => void }) {
  const { api } = useServices();
  const me = useLoad(() => api.me(), [api]);
  const exporting = useAction();
  const closing = useAction();
  const [asking, setAsking] = useState(false);
  const [exported, setExported] = useState(false);

  const exportData = async () => {
    setExported(false);
    const data = await exporting.run(() => api.exportAccount());
    if (data) {
      download(`meetings-export-${data.exportedAt.slice(0, 10)}.json`, data);
      setExported(true);
    }
  };

  const close = async () => {
    const closed = await closing.run(async () => {
      await api.closeAccount();
      return true;
    });
    setAsking(false);
    if (closed) onClosed();
  };

  return (
    <>
      <ScreenHeading title="My account" />
      <ProblemNotice error={me.error} action="load" onRetry={me.reload} />
      {me.data && (
        <dl className="details">
          <dt>Name</dt>
          <dd>{me.data.name}</dd>
          <dt>Email</dt>
          <dd>{me.data.email ?? "No verified address"}</dd>
        </dl>
      )}
      <section aria-labelledby="export-heading">
        <h2 id="export-heading">Your data</h2>
        <p>Download everything this service keeps about you, as one JSON file.</p>
        <button type="button" onClick={exportData} disabled={exporting.busy}>
          {exporting.busy ? "Preparing…" : "Download my data"}
        </button>
        {exported && <p role="status">Your data was downloaded.</p>}
        <ProblemNotice error={exporting.error} action="export" onRetry={exportData} />
      </section>
      <section aria-labelledby="close-heading">
        <h2 id="close-heading">Close your account</h2>
        <p>
          Your meetings are cancelled, your invitations removed, and your name and email erased from this service
          within a minute.
        </p>
        <button type="button" className="danger" onClick={() => setAsking(true)}>
          Close my account
        </button>
        <ProblemNotice error={closing.error} action="close-account" onRetry={() => setAsking(true)} />
      </section>
      <ConfirmDialog
        open={asking}
        title="Close your account?"
        confirmLabel="Close my account for good"
        cancelLabel="Keep my account"
        busy={closing.busy}
        onConfirm={close}
        onCancel={() => setAsking(false)}
      >
        <p>Every meeting you organize is cancelled for everyone invited. This cannot be undone.</p>
      </ConfirmDialog>
    </>
  );
}
