import { ScreenHeading } from "../components/ScreenHeading";

/** What a closed account sees, whatever it opened: the API refuses it everywhere. */
export function AccountClosedScreen({ detail }: { detail: string }) {
  return (
    <>
      <ScreenHeading title="Account closed" />
      <p role="alert">{detail}</p>
      <p>Nothing in this service can be seen or changed with this account any more. Sign out to use another one.</p>
    </>
  );
}
