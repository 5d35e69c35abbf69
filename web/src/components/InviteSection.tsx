import { type FormEvent, useId, useState } from "react";
import { useAction } from "../action";
import type { Invite, InviteRole, Meeting, Page } from "../api/types";
import { useLoad } from "../load";
import { useServices } from "../services";
import { formatInstant } from "../times";
import { ConfirmDialog } from "./ConfirmDialog";
import { ProblemNotice } from "./ProblemNotice";

const STATUS: Record<Invite["status"], string> = {
  pending: "Invited",
  accepted: "Accepted",
  declined: "Declined",
  revoked: "Revoked",
};

const ROLE: Record<InviteRole, string> = { host: "Host", participant: "Participant" };

/** The invite form and the list of invitations, for the owner and hosts. */
export function InviteSection({ meeting }: { meeting: Meeting }) {
  const { api } = useServices();
  const [pages, setPages] = useState<Page<Invite> | null>(null);
  const first = useLoad(async () => {
    const page = await api.listInvites(meeting.id);
    setPages(page);
    return page;
  }, [api, meeting.id]);

  const more = useAction();
  const showMore = async () => {
    if (!pages?.nextCursor) return;
    const page = await more.run(() => api.listInvites(meeting.id, pages.nextCursor ?? undefined));
    if (page) setPages({ items: [...pages.items, ...page.items], nextCursor: page.nextCursor });
  };

  // An invite answered by the API replaces the one listed for the same address, or joins the list.
  const merge = (changed: Invite[]) =>
    setPages((current) => {
      const items = [...(current?.items ?? [])];
      for (const invite of changed) {
        const index = items.findIndex((item) => item.id === invite.id);
        if (index >= 0) items[index] = invite;
        else items.push(invite);
      }
      return { items, nextCursor: current?.nextCursor ?? null };
    });

  return (
    <section aria-labelledby="invites-heading">
      <h2 id="invites-heading">People invited</h2>
      {meeting.status !== "cancelled" && <InviteForm meeting={meeting} onInvited={merge} />}
      <ProblemNotice error={first.error} action="load" onRetry={first.reload} />
      {pages && pages.items.length === 0 && <p>Nobody is invited yet.</p>}
      {pages && pages.items.length > 0 && (
        <InviteList meeting={meeting} invites={pages.items} onChanged={merge} onRevoked={first.reload} />
      )}
      <ProblemNotice error={more.error} action="load" onRetry={showMore} />
      {pages?.nextCursor && (
        <button type="button" onClick={showMore}>
          Show more invitations
        </button>
      )}
    </section>
  );
}

function InviteForm({ meeting, onInvited }: { meeting: Meeting; onInvited: (invites: Invite[]) => void }) {
  const { api } = useServices();
  const [email, setEmail] = useState("");
  const [role, setRole] = useState<InviteRole>("participant");
  const [sent, setSent] = useState<string | null>(null);
  const inviting = useAction();
  const id = useId();
  const owner = meeting.myRole === "owner";

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setSent(null);
    const address = email.trim();
    const answer = await inviting.run(() => api.invite(meeting.id, [{ email: address, role }]));
    if (answer) {
      onInvited(answer.items);
      setSent(`Invitation sent to ${address}.`);
      setEmail("");
    }
  };

  return (
    <form onSubmit={submit} className="invite-form" aria-label="Invite someone">
      <div className="field">
        <label htmlFor={`${id}-email`}>Email address</label>
        <input
          id={`${id}-email`}
          type="email"
          required
          autoComplete="off"
          value={email}
          onChange={(event) => setEmail(event.target.value)}
        />
      </div>
      {owner ? (
        <div className="field">
          <label htmlFor={`${id}-role`}>Role</label>
          <select id={`${id}-role`} value={role} onChange={(event) => setRole(event.target.value as InviteRole)}>
            <option value="participant">Participant</option>
            <option value="host">Host (can invite, admit and end sessions)</option>
          </select>
        </div>
      ) : (
        <p className="hint">As a host you invite participants.</p>
      )}
      <div className="actions">
        <button type="submit" disabled={inviting.busy || email.trim() === ""}>
          Invite
        </button>
      </div>
      {sent && (
        <p role="status" className="notice">
          {sent}
        </p>
      )}
      <ProblemNotice error={inviting.error} action="invite" onRetry={inviting.clear} />
    </form>
  );
}

/** Who a row's button acts on, for screen readers (the row shows it already). */
function ForWhom({ email }: { email: string }) {
  return <span className="visually-hidden"> {email}</span>;
}

interface ListProps {
  meeting: Meeting;
  invites: Invite[];
  onChanged: (invites: Invite[]) => void;
  onRevoked: () => void;
}

function InviteList({ meeting, invites, onChanged, onRevoked }: ListProps) {
  const { api, viewerZone } = useServices();
  const [revoking, setRevoking] = useState<Invite | null>(null);
  const acting = useAction();
  const [action, setAction] = useState<"invite" | "revoke">("invite");
  const owner = meeting.myRole === "owner" && meeting.status !== "cancelled";

  // Inviting an address again updates its role (and makes a revoked or declined invite pending again).
  const reinvite = async (invite: Invite, role: InviteRole) => {
    setAction("invite");
    const answer = await acting.run(() => api.invite(meeting.id, [{ email: invite.email, role }]));
    if (answer) onChanged(answer.items);
  };

  const revoke = async (invite: Invite) => {
    setAction("revoke");
    const done = await acting.run(async () => {
      await api.revokeInvite(meeting.id, invite.id);
      return true;
    });
    setRevoking(null);
    if (done) onRevoked();
  };

  return (
    <>
      <table>
        <caption className="visually-hidden">Invitations</caption>
        <thead>
          <tr>
            <th scope="col">Email</th>
            <th scope="col">Role</th>
            <th scope="col">Status</th>
            <th scope="col">Invited</th>
            {owner && <th scope="col">Change</th>}
          </tr>
        </thead>
        <tbody>
          {invites.map((invite) => (
            <tr key={invite.id}>
              <th scope="row">{invite.email}</th>
              <td>{ROLE[invite.role]}</td>
              <td>{STATUS[invite.status]}</td>
              <td>{formatInstant(invite.invitedAt, viewerZone)}</td>
              {owner && (
                <td className="row-actions">
                  {invite.status === "pending" || invite.status === "accepted" ? (
                    <>
                      <button
                        type="button"
                        disabled={acting.busy}
                        onClick={() => reinvite(invite, invite.role === "host" ? "participant" : "host")}
                      >
                        {invite.role === "host" ? "Make participant" : "Make host"}
                        <ForWhom email={invite.email} />
                      </button>
                      <button type="button" className="danger" disabled={acting.busy} onClick={() => setRevoking(invite)}>
                        Revoke
                        <ForWhom email={invite.email} />
                      </button>
                    </>
                  ) : (
                    <button type="button" disabled={acting.busy} onClick={() => reinvite(invite, invite.role)}>
                      Invite again
                      <ForWhom email={invite.email} />
                    </button>
                  )}
                </td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
      <ProblemNotice error={acting.error} action={action} onRetry={acting.clear} />
      <ConfirmDialog
        open={revoking !== null}
        title={`Revoke ${revoking?.email ?? ""}'s invitation?`}
        confirmLabel="Revoke"
        cancelLabel="Keep the invitation"
        busy={acting.busy}
        onConfirm={() => revoking && revoke(revoking)}
        onCancel={() => setRevoking(null)}
      >
        <p>They can no longer see or join this meeting, and are removed from a call in progress.</p>
      </ConfirmDialog>
    </>
  );
}
