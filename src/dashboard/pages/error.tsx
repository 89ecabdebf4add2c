/** The page of a refused or failed request. */
import { Layout } from "./layout.tsx";

export function ErrorPage(props: { title: string; message: string }) {
  return (
    <Layout title={props.title}>
      <h1>{props.title}</h1>
      <p>{props.message}</p>
      <p>
        <a href="/">back to the runs</a>
      </p>
    </Layout>
  );
}
