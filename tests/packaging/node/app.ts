// TypeScript consumer, checked with tsc --strict against the installed package's types.
import { Client, NotFound, type LivecacheEvent } from 'livecache'

interface Message {
  text: string
}

const client = new Client({ endpoints: { feed: { stream: { apply: 'append' } } } })
const sub = client.subscribe<Message[]>('feed', 'ts', (ev: LivecacheEvent<Message[]>) => {
  if (ev.type === 'snapshot') console.log(ev.data.map((m) => m.text.toUpperCase()))
})
client.pushMessage('feed', 'ts', { text: 'typed' })
try {
  client.snapshot('feed', 'missing')
} catch (e) {
  if (e instanceof NotFound) console.log(e.code)
}
sub.unsubscribe()
void client.close()
