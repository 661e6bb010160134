import type { CombinedError } from "urql";

/** A null list entry's typed error, from the GraphQL error at its path. */
export interface PathError {
  path: string;
  code: string;
  message: string;
  platform: string | null;
}

/**
 * Errors at <root>.<list>.<index>: a platform that fails nulls only its own entries
 * and says why at their path; the other platforms' entries still answer.
 */
export function errorsAt(error: CombinedError | undefined, root: string, list: string): Map<number, PathError> {
  const found = new Map<number, PathError>();
  for (const item of error?.graphQLErrors ?? []) {
    const path = item.path ?? [];
    if (path[0] !== root || path[1] !== list || typeof path[2] !== "number") continue;
    // The gateway names the failing platform in extensions.details.platform.
    const extensions = item.extensions as { code?: unknown; details?: { platform?: unknown } };
    const platform = extensions.details?.platform;
    found.set(path[2], {
      path: path.join("."),
      code: String(extensions.code ?? "ERROR"),
      message: item.message,
      platform: typeof platform === "string" ? platform : null,
    });
  }
  return found;
}

/** "Partial result: N <noun>(s) could not be read." when some entries failed. */
export function PartialNotice({ count, noun }: { count: number; noun: string }) {
  if (count === 0) return null;
  return (
    <p className="partial" role="status">
      Partial result: {count} {noun}(s) could not be read.
    </p>
  );
}

/** The table row standing for a null entry: its platform and the error at its path. */
export function ErrorRow({
  failure,
  index,
  span,
  kind,
  path,
}: {
  failure?: PathError;
  index: number;
  span: number;
  kind: string;
  /** The entry's path, shown when no error names it. */
  path: string;
}) {
  return (
    <tr className={`${kind}-error`} data-index={index}>
      <td>
        <span className="badge badge-error">{failure?.platform ?? "unknown"}</span>
      </td>
      <td colSpan={span}>
        <strong>{failure?.code ?? "ERROR"}</strong> at {failure?.path ?? path}: {failure?.message ?? "not available"}
      </td>
    </tr>
  );
}
