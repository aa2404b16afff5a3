// CommonJS consumer of the installed npm package: data from a queryFn hook, a change through the
// stream pipeline (pushMessage) arriving as an RFC 6902 patch, and a clear error for a bad call.
const { Client, UnknownEndpoint } = require('livecache')

const client = new Client({ endpoints: { feed: { stream: { apply: 'append' } } } }, { feed: { queryFn: (arg) => [{ text: `welcome to ${arg}` }] } })
const sub = client.subscribe('feed', 'general', (ev) => {
  if (ev.type === 'patch') {
    console.log(JSON.stringify(ev.patches))
    try {
      client.pushMessage('nowhere', 'x', {})
    } catch (e) {
      console.log(e instanceof UnknownEndpoint ? e.code : `wrong error: ${e}`)
    }
    sub.unsubscribe()
    client.close().then(() => console.log('cjs: ok'))
  }
})
sub.loaded().then((data) => {
  console.log(data[0].text)
  client.pushMessage('feed', 'general', { text: 'hello' })
})
