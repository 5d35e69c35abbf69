import { ScreenHeading } from "../components/ScreenHeading";
import { match } from "../router";

interface Props {
  onSignIn: () => void;
  notice: string | null;
}

export function SignInScreen({ onSignIn, notice }: Props) {
  const route = match(window.location.pathname);
  const opening = route.screen === "meeting" || route.screen === "call";
  return (
    <main id="main" className="sign-in">
      <ScreenHeading title="Sign in" />
      {notice && <p role="status">{notice}</p>}
      <p>
        {opening
          ? "Sign in with your work account to open this meeting."
          : "Sign in with your work account to see, create and join your meetings."}
      </p>
      <button type="button" className="primary" onClick={onSignIn}>
        Sign in
      </button>
    </main>
  );
}
