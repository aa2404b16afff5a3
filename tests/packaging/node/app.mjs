// ESM consumer of the installed npm package: named and default imports are the same objects.
import livecache, { Client } from 'livecache'

const client = new Client({ endpoints: { hello: {} } }, { hello: { queryFn: async (name) => ({ greeting: `hello ${name}` }) } })
const sub = client.subscribe('hello', 'esm')
const data = await sub.loaded()
console.log(data.greeting, livecache.Client === Client)
sub.unsubscribe()
await client.close()
console.log('esm: ok')
