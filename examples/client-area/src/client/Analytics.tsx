import { useQuery } from "urql";
import { graphql } from "../gql";
import { runningTotals } from "../decimal";
import { BarChart, StepChart } from "./Charts";

const positions = (n: number) => `${n} position${n === 1 ? "" : "s"}`;

type Rank = { name?: string | null; positions: number; share: string };

/** A ranking's bars; null: the platform does not classify symbols at that level. */
function rankBars(ranks: Rank[]) {
  return ranks.map((r) => ({
    // null counts the symbols the platform's list does not classify: never a guess.
    label: r.name ?? "Unclassified",
    value: String(r.positions),
    text: `${positions(r.positions)} · ${(Number(r.share) * 100).toFixed(1)} %`,
  }));
}
import {
  AccountPicker,
  ErrorLine,
  PeriodFields,
  fieldError,
  money,
  periodVariables,
  useAccountPeriod,
  type Period,
} from "./common";

const AccountAnalytics = graphql(`
  query AccountAnalytics($id: ID!, $from: DateTime!, $to: DateTime!) {
    account(id: $id) {
      id
      currency
      deals(from: $from, to: $to) {
        externalId
        symbol
        executedAt
        realizedPnl {
          amount
          currency
        }
      }
      analytics(from: $from, to: $to) {
        periodFrom
        periodTo
        realizedPnl {
          amount
          currency
        }
        wins
        losses
        winRatio
        volumeBySymbol {
          symbol
          volume
          positions
          lots
          notional {
            amount
            currency
          }
        }
        mostOpenedSymbols {
          symbol
          positions
          volume
        }
        byCategory: mostOpened(level: CATEGORY) {
          name
          positions
          share
        }
        byAssetClass: mostOpened(level: ASSET_CLASS) {
          name
          positions
          share
        }
        copySubAccounts {
          accountId
          externalId
          account {
            id
            status
          }
          balance {
            amount
            currency
          }
          equity {
            amount
            currency
          }
        }
      }
    }
  }
`);

/** Seed 003's analytics of one account for a period: P&L over time, win/loss, volumes, symbols. */
export function Analytics() {
  const { context, accountId, setChosen, draft, setDraft, period, show } = useAccountPeriod("ACCOUNT_ANALYTICS", 90);

  return (
    <section aria-labelledby="analytics-title">
      <h2 id="analytics-title">Analytics</h2>
      {context.loading && <p aria-busy="true">Loading accounts…</p>}
      {!context.loading && context.accounts.length === 0 && (
        <p>None of your accounts is on a platform that serves analytics.</p>
      )}
      {accountId && (
        <>
          <form
            className="toolbar"
            onSubmit={(event) => {
              event.preventDefault();
              show();
            }}
          >
            <AccountPicker accounts={context.accounts} value={accountId} onChange={setChosen} />
            <PeriodFields value={draft} onChange={setDraft} />
            <button type="submit">Show analytics</button>
          </form>
          <AnalyticsOf accountId={accountId} period={period} key={`${accountId} ${period.from} ${period.to}`} />
        </>
      )}
    </section>
  );
}

function AnalyticsOf({ accountId, period }: { accountId: string; period: Period }) {
  const variables = { id: accountId, ...periodVariables(period) };
  const [{ data, error, fetching }] = useQuery({ query: AccountAnalytics, variables });
  if (fetching && !data) return <p aria-busy="true">Reading the period…</p>;
  const account = data?.account;
  const analytics = account?.analytics;
  const deals = [...(account?.deals ?? [])]
    .filter((d) => d.realizedPnl)
    .sort((a, b) => a.executedAt.localeCompare(b.executedAt));
  const totals = runningTotals(deals.map((d) => d.realizedPnl!.amount));
  const currency = analytics?.realizedPnl.currency ?? account?.currency ?? "";

  return (
    <div className="analytics" data-ready={analytics ? "true" : "false"}>
      <ErrorLine text={fieldError(error, "analytics")} />
      {analytics && (
        <>
          <dl className="figures">
            <div>
              <dt>Realised P&amp;L</dt>
              <dd className="num realized">{money(analytics.realizedPnl)}</dd>
            </div>
            <div>
              <dt>Positions won / lost</dt>
              <dd className="num winloss">
                {analytics.wins} / {analytics.losses}
              </dd>
            </div>
            <div>
              <dt>Win ratio</dt>
              <dd className="num ratio">{analytics.winRatio ?? "—"}</dd>
            </div>
          </dl>
          <div className="charts">
            {fieldError(error, "deals") ? (
              <ErrorLine text={fieldError(error, "deals")} />
            ) : (
              <StepChart
                name="pnl"
                caption={`Realised P&L over time (${currency}, closing deals summed)`}
                start={analytics.periodFrom}
                end={analytics.periodTo}
                unit={currency}
                points={deals.map((d, i) => ({
                  at: d.executedAt,
                  value: totals[i],
                  label: `${d.symbol} deal ${d.externalId} ${d.realizedPnl!.amount}`,
                }))}
              />
            )}
            <BarChart
              name="winloss"
              caption="Positions closed in the period: won and lost"
              bars={[
                { label: "Won", value: String(analytics.wins), text: positions(analytics.wins), tone: "good" },
                { label: "Lost", value: String(analytics.losses), text: positions(analytics.losses), tone: "bad" },
              ]}
            />
            <BarChart
              name="volume"
              caption={`Open volume per symbol (notional at entry, ${currency}; lots beside)`}
              bars={analytics.volumeBySymbol.map((v) => ({
                label: v.symbol,
                // Base units are not comparable across symbols; notional is (null: lots).
                value: v.notional?.amount ?? v.lots ?? "0",
                text: `${v.notional ? money(v.notional) : "—"} · ${v.lots ?? "?"} lots`,
              }))}
            />
            <BarChart
              name="opened"
              caption="Most-opened symbols (positions opened in the period)"
              bars={analytics.mostOpenedSymbols.map((s) => ({
                label: s.symbol,
                value: String(s.positions),
                text: positions(s.positions),
              }))}
            />
            {[
              ["category", "Positions opened by category", analytics.byCategory],
              ["assetclass", "Positions opened by asset class", analytics.byAssetClass],
            ].map(([name, caption, ranks]) =>
              ranks ? (
                <BarChart
                  key={name as string}
                  name={name as string}
                  caption={caption as string}
                  bars={rankBars(ranks as Rank[])}
                />
              ) : (
                <p key={name as string} className="hint" data-chart={name as string}>
                  {caption as string}: this platform does not classify its symbols so.
                </p>
              ),
            )}
          </div>
          {analytics.copySubAccounts.length > 0 && (
            <table className="stack copy-subaccounts">
              <caption>Copy sub-accounts</caption>
              <thead>
                <tr>
                  <th scope="col">Login</th>
                  <th scope="col">Balance</th>
                  <th scope="col">Equity</th>
                  <th scope="col">Status</th>
                </tr>
              </thead>
              <tbody>
                {analytics.copySubAccounts.map((c) => (
                  <tr key={c.accountId} data-login={c.externalId}>
                    <td data-label="Login">{c.externalId}</td>
                    <td data-label="Balance" className="num">
                      {money(c.balance)}
                    </td>
                    <td data-label="Equity" className="num">
                      {money(c.equity)}
                    </td>
                    <td data-label="Status">{c.account?.status ?? "—"}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </>
      )}
    </div>
  );
}
