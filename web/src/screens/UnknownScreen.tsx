import { ScreenHeading } from "../components/ScreenHeading";
import { Link, paths } from "../router";

export function UnknownScreen() {
  return (
    <>
      <ScreenHeading title="Page not found" />
      <p>
        There is nothing at this address. <Link href={paths.meetings}>Go to my meetings</Link>.
      </p>
    </>
  );
}
