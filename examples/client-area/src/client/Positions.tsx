import { useQuery } from "urql";
import { graphql } from "../gql";
import {
  AccountPicker,
  ErrorLine,
  PeriodFields,
  fieldError,
  money,
  periodVariables,
  useAccountPeriod,
  when,
  type Period,
} from "./common";

const AccountPositions = graphql(`
  query AccountPositions($id: ID!) {
    account(id: $id) {
      id
      positions {
        externalId
        symbol
        side
        volume
        openPrice
        openedAt
        currentPrice
        unrealizedPnl {
          amount
          currency
        }
        swap {
          amount
          currency
        }
      }
    }
  }
`);

const AccountDeals = graphql(`
  query AccountDeals($id: ID!, $from: DateTime!, $to: DateTime!) {
    account(id: $id) {
      id
      deals(from: $from, to: $to) {
        externalId
        symbol
        side
        volume
        price
        executedAt
        positionId
        realizedPnl {
          amount
          currency
        }
        commission {
          amount
          currency
        }
      }
    }
  }
`);

/** An account's open positions, and its deals in a period. */
export function Positions() {
  const { context, accountId, setChosen, draft, setDraft, period, show } = useAccountPeriod("ACCOUNT_READS", 30);
  return (
    <section aria-labelledby="positions-title">
      <h2 id="positions-title">Positions and deals</h2>
      {context.loading && <p aria-busy="true">Loading accounts…</p>}
      {accountId && (
        <>
          <div className="toolbar">
            <AccountPicker accounts={context.accounts} value={accountId} onChange={setChosen} />
          </div>
          <OpenPositions accountId={accountId} key={accountId} />
          <form
            className="toolbar"
            onSubmit={(event) => {
              event.preventDefault();
              show();
            }}
          >
            <PeriodFields value={draft} onChange={setDraft} />
            <button type="submit">Show deals</button>
          </form>
          <Deals accountId={accountId} period={period} key={`${accountId} ${period.from} ${period.to}`} />
        </>
      )}
    </section>
  );
}

function OpenPositions({ accountId }: { accountId: string }) {
  const [{ data, error, fetching }] = useQuery({ query: AccountPositions, variables: { id: accountId } });
  if (fetching && !data) return <p aria-busy="true">Reading positions…</p>;
  const positions = data?.account.positions;
  return (
    <>
      <ErrorLine text={fieldError(error, "positions")} />
      {positions && (
        <table className="stack positions" data-count={positions.length}>
          <caption>Open positions ({positions.length})</caption>
          <thead>
            <tr>
              <th scope="col">Position</th>
              <th scope="col">Symbol</th>
              <th scope="col">Side</th>
              <th scope="col">Volume</th>
              <th scope="col">Open price</th>
              <th scope="col">Opened</th>
              <th scope="col">Unrealised P&amp;L</th>
              <th scope="col">Swap</th>
            </tr>
          </thead>
          <tbody>
            {positions.map((p) => (
              <tr key={p.externalId} data-position={p.externalId}>
                <td data-label="Position">{p.externalId}</td>
                <td data-label="Symbol">{p.symbol}</td>
                <td data-label="Side">{p.side}</td>
                <td data-label="Volume" className="num">
                  {p.volume}
                </td>
                <td data-label="Open price" className="num">
                  {p.openPrice}
                </td>
                <td data-label="Opened">{when(p.openedAt)}</td>
                <td data-label="Unrealised P&L" className="num">
                  {money(p.unrealizedPnl)}
                </td>
                <td data-label="Swap" className="num">
                  {money(p.swap)}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}

function Deals({ accountId, period }: { accountId: string; period: Period }) {
  const variables = { id: accountId, ...periodVariables(period) };
  const [{ data, error, fetching }] = useQuery({ query: AccountDeals, variables });
  if (fetching && !data) return <p aria-busy="true">Reading deals…</p>;
  const deals = data?.account.deals;
  return (
    <>
      <ErrorLine text={fieldError(error, "deals")} />
      {deals && (
        <table className="stack deals" data-count={deals.length}>
          <caption>
            Deals {period.from} to {period.to} ({deals.length})
          </caption>
          <thead>
            <tr>
              <th scope="col">Deal</th>
              <th scope="col">Executed</th>
              <th scope="col">Symbol</th>
              <th scope="col">Side</th>
              <th scope="col">Volume</th>
              <th scope="col">Price</th>
              <th scope="col">Realised P&amp;L</th>
              <th scope="col">Commission</th>
            </tr>
          </thead>
          <tbody>
            {[...deals].reverse().map((d) => (
              <tr key={d.externalId} data-deal={d.externalId}>
                <td data-label="Deal">{d.externalId}</td>
                <td data-label="Executed">{when(d.executedAt)}</td>
                <td data-label="Symbol">{d.symbol}</td>
                <td data-label="Side">{d.side}</td>
                <td data-label="Volume" className="num">
                  {d.volume}
                </td>
                <td data-label="Price" className="num">
                  {d.price}
                </td>
                <td data-label="Realised P&L" className="num pnl">
                  {money(d.realizedPnl)}
                </td>
                <td data-label="Commission" className="num">
                  {money(d.commission)}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}
