// A few routes need no router library: the path is the state, history moves it.
import { type AnchorHTMLAttributes, type MouseEvent, useEffect, useSyncExternalStore } from "react";

const CHANGE = "app:navigate";

export function navigate(to: string, options: { replace?: boolean } = {}): void {
  if (options.replace) window.history.replaceState(null, "", to);
  else window.history.pushState(null, "", to);
  window.dispatchEvent(new Event(CHANGE));
}

function subscribe(callback: () => void): () => void {
  window.addEventListener("popstate", callback);
  window.addEventListener(CHANGE, callback);
  return () => {
    window.removeEventListener("popstate", callback);
    window.removeEventListener(CHANGE, callback);
  };
}

export function usePath(): string {
  return useSyncExternalStore(subscribe, () => window.location.pathname);
}

export type Route =
  | { screen: "meetings" }
  | { screen: "new" }
  | { screen: "meeting"; id: string }
  | { screen: "edit"; id: string }
  | { screen: "call"; id: string }
  | { screen: "account" }
  | { screen: "unknown" };

export function match(path: string): Route {
  if (path === "/" || path === "/meetings") return { screen: "meetings" };
  if (path === "/meetings/new") return { screen: "new" };
  if (path === "/account") return { screen: "account" };
  const meeting = /^\/meetings\/([^/]+)(?:\/(edit|call))?\/?$/.exec(path);
  if (meeting?.[1]) {
    const id = decodeURIComponent(meeting[1]);
    if (meeting[2] === "edit") return { screen: "edit", id };
    if (meeting[2] === "call") return { screen: "call", id };
    return { screen: "meeting", id };
  }
  return { screen: "unknown" };
}

export const paths = {
  meetings: "/",
  newMeeting: "/meetings/new",
  meeting: (id: string) => `/meetings/${encodeURIComponent(id)}`,
  edit: (id: string) => `/meetings/${encodeURIComponent(id)}/edit`,
  call: (id: string) => `/meetings/${encodeURIComponent(id)}/call`,
  account: "/account",
};

/** An ordinary link that moves within the app without reloading it (modifier clicks still open tabs). */
export function Link({ href, onClick, ...rest }: AnchorHTMLAttributes<HTMLAnchorElement> & { href: string }) {
  const follow = (event: MouseEvent<HTMLAnchorElement>) => {
    onClick?.(event);
    if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey)
      return;
    event.preventDefault();
    navigate(href);
  };
  return <a href={href} onClick={follow} {...rest} />;
}

/** Scroll to the top when the path changes, as a page load would. */
export function useScrollReset(path: string): void {
  useEffect(() => {
    // Braces matter: newer browsers' scrollTo returns a promise, which React would take for a clean-up.
    window.scrollTo(0, 0);
  }, [path]);
}
