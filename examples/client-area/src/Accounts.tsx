import { useState } from "react";
import { useQuery } from "urql";
import { graphql } from "./gql";
import type { MyAccountsQuery } from "./gql/graphql";
import { Orders } from "./Orders";
import { money } from "./format";
import { ErrorRow, PartialNotice, errorsAt } from "./ui/PartialList";

const MyAccounts = graphql(`
  query MyAccounts {
    viewer {
      role
      partnerCode
    }
    me {
      code
      name
      accounts {
        id
        platform
        number
        currency
        status
        balance {
          amount
          currency
        }
        equity {
          amount
          currency
        }
        credit {
          amount
          currency
        }
        margin {
          amount
          currency
        }
      }
    }
  }
`);

type Account = NonNullable<NonNullable<MyAccountsQuery["me"]>["accounts"][number]>;

export function Accounts() {
  const [{ data, error, fetching }] = useQuery({ query: MyAccounts });
  const [selected, setSelected] = useState<string | null>(null);

  if (fetching && !data) return <p aria-busy="true">Loading accounts…</p>;
  if (!data?.me) {
    return <p role="alert">{error ? error.message : "This token has no partner of its own."}</p>;
  }
  // A platform that fails leaves its entry null with a typed error at its path
  // (me.accounts.<index>); the other platforms' accounts still answer.
  const partial = errorsAt(error, "me", "accounts");
  const accounts = data.me.accounts;
  const qst = accounts.filter((a): a is Account => a?.platform === "qst");
  const trading = accounts.find((a) => a?.id === selected) ?? qst[0] ?? null;

  return (
    <>
      <section aria-labelledby="accounts-title">
        <h2 id="accounts-title">
          Accounts of {data.me.name} ({data.me.code})
        </h2>
        <PartialNotice count={partial.size} noun="account" />
        <table className="accounts">
          <thead>
            <tr>
              <th scope="col">Platform</th>
              <th scope="col">Account</th>
              <th scope="col">Status</th>
              <th scope="col">Balance</th>
              <th scope="col">Equity</th>
              <th scope="col">Credit</th>
              <th scope="col">Margin</th>
            </tr>
          </thead>
          <tbody>
            {accounts.map((account, index) => {
              if (account === null) {
                const failure = partial.get(index);
                const path = `me.accounts.${index}`;
                // The entry's own path, even where the error names a field inside it.
                return (
                  <ErrorRow
                    key={`error-${index}`}
                    failure={failure && { ...failure, path }}
                    index={index}
                    span={6}
                    kind="account"
                    path={path}
                  />
                );
              }
              return (
                <tr key={account.id} data-account={account.number} data-platform={account.platform}>
                  <td data-label="Platform">
                    <span className={`badge badge-${account.platform}`}>{account.platform}</span>
                  </td>
                  <td data-label="Account">{account.number}</td>
                  <td data-label="Status">{account.status}</td>
                  <td data-label="Balance" className="num balance">{money(account.balance)}</td>
                  <td data-label="Equity" className="num equity">{money(account.equity)}</td>
                  <td data-label="Credit" className="num credit">{money(account.credit)}</td>
                  <td data-label="Margin" className="num margin">{money(account.margin)}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </section>
      {qst.length > 0 && trading && (
        <section aria-labelledby="orders-title">
          <h2 id="orders-title">Orders</h2>
          <label>
            Account
            <select value={trading.id} onChange={(event) => setSelected(event.target.value)}>
              {qst.map((a) => (
                <option key={a.id} value={a.id}>
                  {a.platform} {a.number}
                </option>
              ))}
            </select>
          </label>
          <Orders accountId={trading.id} key={trading.id} />
        </section>
      )}
    </>
  );
}
