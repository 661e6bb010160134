import { useEffect, useState } from "react";
import { useMutation, useQuery } from "urql";
import { graphql } from "../gql";
import type { ReportFormat } from "../gql/graphql";
import {
  ErrorLine,
  PeriodFields,
  lastDays,
  periodVariables,
  useClientContext,
  useToken,
  when,
  type Period,
} from "./common";

const ClientReports = graphql(`
  query ClientReports {
    me {
      code
      reports {
        id
        platform
        externalId
        status
        format
        requestedAt
        readyAt
        periodFrom
        periodTo
        downloadUrl
        accountId
        accountExternalId
      }
    }
  }
`);

const RequestClientReport = graphql(`
  mutation RequestClientReport($input: RequestClientReportInput!) {
    requestClientReport(input: $input) {
      reports {
        id
        externalId
        status
      }
      errors {
        code
        message
      }
    }
  }
`);

/** Which account a report covers: the platform's code of it (QORT's sub-account). */
function covers(
  report: { accountId?: string | null; accountExternalId?: string | null },
  names: Map<string, string>,
): string {
  if (report.accountExternalId) return report.accountExternalId;
  if (report.accountId) return names.get(report.accountId) ?? "one account";
  return "All accounts";
}

const PENDING = new Set(["REQUESTED", "GENERATING"]);
/** How often the list is re-read while a report is still being made. */
const POLL_MS = 1000;

/** Request a client report, watch it become ready, download its file. */
export function Reports() {
  const context = useClientContext("CLIENT_REPORTS");
  const token = useToken();
  const [{ data, error }, reread] = useQuery({ query: ClientReports, requestPolicy: "network-only" });
  const [requesting, request] = useMutation(RequestClientReport);
  const [format, setFormat] = useState<ReportFormat>("CSV");
  const [period, setPeriod] = useState<Period>(() => lastDays(30));
  const [accountId, setAccountId] = useState("");
  const [message, setMessage] = useState<string | null>(null);
  const reports = [...(data?.me?.reports ?? [])].sort((a, b) => b.requestedAt.localeCompare(a.requestedAt));
  const pending = reports.some((r) => PENDING.has(r.status));
  const accountNames = new Map(context.accounts.map((a) => [a.id, `${a.platform} ${a.number}`]));

  // The API has no report event to subscribe to: re-read while one is being made.
  useEffect(() => {
    if (!pending) return;
    const timer = setTimeout(() => reread({ requestPolicy: "network-only" }), POLL_MS);
    return () => clearTimeout(timer);
  }, [pending, data, reread]);

  async function submit(event: React.FormEvent) {
    event.preventDefault();
    if (!context.partnerCode) return;
    setMessage(null);
    const result = await request({
      input: {
        partnerCode: context.partnerCode,
        format,
        ...(() => {
          const { from, to } = periodVariables(period);
          return { periodFrom: from, periodTo: to };
        })(),
        ...(accountId ? { accountId } : {}),
      },
    });
    const errors = result.data?.requestClientReport.errors ?? [];
    if (result.error) setMessage(result.error.message);
    else if (errors.length) setMessage(errors.map((e) => `${e.code}: ${e.message}`).join("; "));
    else {
      const made = result.data?.requestClientReport.reports ?? [];
      setMessage(`Requested ${made.map((r) => r.externalId).join(", ")}`);
      reread({ requestPolicy: "network-only" });
    }
  }

  async function download(url: string, name: string) {
    setMessage(null);
    // The file needs the same bearer token as the API, so a plain link cannot fetch it.
    const answer = await fetch(new URL(url, window.location.href), {
      headers: { Authorization: `Bearer ${token}` },
    });
    if (!answer.ok) {
      setMessage(`Download failed: HTTP ${answer.status}`);
      return;
    }
    const link = document.createElement("a");
    link.href = URL.createObjectURL(await answer.blob());
    link.download = name;
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
    setMessage(`Downloaded ${name}`);
  }

  return (
    <section aria-labelledby="reports-title">
      <h2 id="reports-title">Reports</h2>
      <form className="toolbar" onSubmit={submit}>
        <label>
          Format
          <select value={format} onChange={(e) => setFormat(e.target.value as ReportFormat)}>
            <option value="CSV">CSV</option>
            <option value="PDF">PDF</option>
          </select>
        </label>
        <PeriodFields value={period} onChange={setPeriod} />
        {context.accounts.length > 0 && (
          <label>
            Accounts
            <select value={accountId} onChange={(e) => setAccountId(e.target.value)}>
              <option value="">All on {context.platforms.join(", ") || "the reporting platform"}</option>
              {context.accounts.map((a) => (
                <option key={a.id} value={a.id}>
                  {a.platform} {a.number}
                </option>
              ))}
            </select>
          </label>
        )}
        <button type="submit" disabled={requesting.fetching || !context.partnerCode}>
          Request report
        </button>
      </form>
      {message && (
        <p role="status" className="report-message">
          {message}
        </p>
      )}
      <ErrorLine text={error ? error.message : null} />
      <table className="stack reports" data-pending={pending}>
        <caption>Your reports{pending ? " (being made: refreshed every second)" : ""}</caption>
        <thead>
          <tr>
            <th scope="col">Report</th>
            <th scope="col">Covers</th>
            <th scope="col">Period</th>
            <th scope="col">Format</th>
            <th scope="col">Requested</th>
            <th scope="col">Status</th>
            <th scope="col">
              <span className="visually-hidden">File</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {reports.map((r) => {
            const name = `client-report-${r.externalId}.${r.format.toLowerCase()}`;
            return (
              <tr key={r.id} data-report={r.externalId}>
                <td data-label="Report">
                  {r.platform} {r.externalId}
                </td>
                <td data-label="Covers" className="covers" data-account={r.accountId ?? ""}>
                  {covers(r, accountNames)}
                </td>
                <td data-label="Period">
                  {r.periodFrom?.slice(0, 10) ?? "—"} – {r.periodTo?.slice(0, 10) ?? "—"}
                </td>
                <td data-label="Format">{r.format}</td>
                <td data-label="Requested">{when(r.requestedAt)}</td>
                <td data-label="Status" className={`status status-${r.status}`}>
                  {r.status}
                </td>
                <td data-label="File">
                  {r.downloadUrl && (
                    <button type="button" onClick={() => void download(r.downloadUrl!, name)}>
                      Download {r.externalId}
                    </button>
                  )}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </section>
  );
}
