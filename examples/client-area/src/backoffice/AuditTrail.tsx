import { useEffect, useRef, useState } from "react";
import { useQuery } from "urql";
import { graphql } from "../gql";

const AuditTrailPage = graphql(`
  query AuditTrailPage($code: String!, $first: Int!, $after: String) {
    auditTrail(partnerCode: $code, first: $first, after: $after) {
      edges {
        cursor
        node {
          at
          actor
          role
          action
          targetType
          targetExternalId
          outcome
          errorCode
          upstreamRef
          idempotencyKey
          amount
          settledBy
        }
      }
      pageInfo {
        hasNextPage
        endCursor
      }
    }
  }
`);

const PAGE = 10;

/** What an outcome means for money, in words (a replay moved nothing). */
const OUTCOME_TEXT: Record<string, string> = {
  OK: "done",
  ERROR: "failed",
  REPLAYED: "replayed: nothing moved",
  UNKNOWN: "outcome unknown",
  SETTLED: "settled: it was applied",
  NOT_APPLIED: "settled: never applied",
  OTHER: "other",
};

/** "2026-12-02T17:40:01.123456Z" as "2026-12-02 17:40:01 UTC". */
function when(at: string): string {
  const match = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})/.exec(at);
  return match ? `${match[1]} ${match[2]} UTC` : at;
}

function Page({
  code,
  after,
  version,
  last,
  onMore,
}: {
  code: string;
  after: string | null;
  version: number;
  last: boolean;
  onMore: (cursor: string) => void;
}) {
  const [{ data, error, fetching }, reexecute] = useQuery({
    query: AuditTrailPage,
    variables: { code, first: PAGE, after },
    requestPolicy: "network-only",
  });
  // A write elsewhere on the page appends rows: read this page again.
  const seen = useRef(version);
  useEffect(() => {
    if (seen.current === version) return;
    seen.current = version;
    reexecute({ requestPolicy: "network-only" });
  }, [version, reexecute]);
  if (error && !data) {
    return (
      <tr>
        <td colSpan={7} role="alert">
          {error.message}
        </td>
      </tr>
    );
  }
  const trail = data?.auditTrail;
  return (
    <>
      {trail?.edges.map(({ cursor, node }) => (
        <tr
          key={cursor}
          className={`audit-row audit-${node.outcome}`}
          data-action={node.action}
          data-outcome={node.outcome}
          data-key={node.idempotencyKey ?? ""}
        >
          <td>
            <time dateTime={node.at}>{when(node.at)}</time>
          </td>
          <td>
            {node.actor} <span className="role">({node.role})</span>
          </td>
          <td>{node.action}</td>
          <td>
            {node.targetType ?? "—"} {node.targetExternalId ?? ""}
          </td>
          <td>
            <span className={`outcome outcome-${node.outcome}`}>{OUTCOME_TEXT[node.outcome] ?? node.outcome}</span>
            {node.errorCode ? ` (${node.errorCode})` : ""}
            {node.settledBy ? ` by ${node.settledBy}` : ""}
          </td>
          <td className="num amount">{node.amount ?? "—"}</td>
          <td className="key">
            {node.idempotencyKey ? <code>{node.idempotencyKey.slice(0, 8)}</code> : "—"}
            {node.upstreamRef ? <span className="ref"> ref {node.upstreamRef}</span> : null}
          </td>
        </tr>
      ))}
      {after === null && trail?.edges.length === 0 && (
        <tr>
          <td colSpan={7} className="hint">
            No writes recorded for this partner yet.
          </td>
        </tr>
      )}
      {fetching && !data && (
        <tr>
          <td colSpan={7} aria-busy="true">
            Loading…
          </td>
        </tr>
      )}
      {last && trail?.pageInfo.hasNextPage && trail.pageInfo.endCursor && (
        <tr>
          <td colSpan={7}>
            <button type="button" onClick={() => onMore(trail.pageInfo.endCursor!)}>
              Show older entries
            </button>
          </td>
        </tr>
      )}
    </>
  );
}

/**
 * The partner's audit trail, newest first, a page at a time: every write on it, its
 * traders, accounts, orders and transfers, whoever made it and however it ended.  A
 * double-clicked deposit shows as one movement (done) and one replay (nothing moved).
 */
export function AuditTrail({ code, version }: { code: string; version: number }) {
  const [pages, setPages] = useState<(string | null)[]>([null]);
  // New rows come first: after a write, show the newest page alone again.
  useEffect(() => setPages([null]), [version, code]);
  return (
    <section aria-labelledby="audit-title" className="bo-panel">
      <h3 id="audit-title">Audit trail</h3>
      <table className="audit-trail">
        <thead>
          <tr>
            <th scope="col">Time</th>
            <th scope="col">Actor</th>
            <th scope="col">Action</th>
            <th scope="col">Target</th>
            <th scope="col">Outcome</th>
            <th scope="col">Amount</th>
            <th scope="col">Key / reference</th>
          </tr>
        </thead>
        <tbody>
          {pages.map((after, index) => (
            <Page
              key={after ?? "first"}
              code={code}
              after={after}
              version={version}
              last={index === pages.length - 1}
              onMore={(cursor) => setPages((shown) => [...shown, cursor])}
            />
          ))}
        </tbody>
      </table>
    </section>
  );
}
