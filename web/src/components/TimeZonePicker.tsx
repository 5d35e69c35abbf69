import { useMemo } from "react";
import { timeZoneNames } from "../times";

interface Props {
  id: string;
  value: string;
  onChange: (zone: string) => void;
  describedBy?: string;
}

/** Every IANA zone the browser knows, grouped by region; the current value stays listed even if unknown. */
export function TimeZonePicker({ id, value, onChange, describedBy }: Props) {
  const groups = useMemo(() => {
    const names = timeZoneNames();
    if (!names.includes(value)) names.unshift(value);
    const byRegion = new Map<string, string[]>();
    for (const name of names) {
      const region = name.includes("/") ? name.slice(0, name.indexOf("/")) : "Other";
      byRegion.set(region, [...(byRegion.get(region) ?? []), name]);
    }
    return [...byRegion.entries()];
  }, [value]);
  return (
    <select id={id} value={value} onChange={(event) => onChange(event.target.value)} aria-describedby={describedBy}>
      {groups.map(([region, names]) => (
        <optgroup key={region} label={region}>
          {names.map((name) => (
            <option key={name} value={name}>
              {name.replaceAll("_", " ")}
            </option>
          ))}
        </optgroup>
      ))}
    </select>
  );
}
