// A typed use of every call; `tsc --noEmit --strict` must accept it (run_tests.sh runs it).
import { Client, CacheEntryRemoved, LivecacheError, type LivecacheEvent, type PatchOperation, type EntryState, type UninitializedEntry, type Stats, type Tag } from 'livecache'

interface Message {
  id: number
  channel: string
  text: string
}

const client = new Client(
  {
    baseUrl: 'http://127.0.0.1:8080/',
    keepUnusedDataFor: 60,
    tagTypes: ['Doc'],
    endpoints: {
      getMessages: { query: 'messages/{arg}', stream: { url: 'ws://127.0.0.1:8080/', filter: { channel: '{arg}' }, apply: 'append' } },
      getDoc: {},
      saveDoc: {},
    },
  },
  {
    getDoc: {
      queryFn: async (id: number) => ({ id, title: 'doc' }),
      transformResponse: (data: { id: number; title: string }) => data,
      providesTags: (data: { id: number }, id: number): Tag[] => [{ type: 'Doc', id: data.id ?? id }],
      async onCacheEntryAdded(arg, { cacheDataLoaded, cacheEntryRemoved, updateCachedData, getCacheEntry }) {
        const { data } = await cacheDataLoaded
        updateCachedData((draft: { title: string }) => {
          draft.title = String(data)
        })
        const state: EntryState | UninitializedEntry = getCacheEntry()
        if (state.status !== 'uninitialized') console.log(arg, state.version)
        await cacheEntryRemoved
      },
    },
    saveDoc: {
      mutationFn: async (doc: { id: number }) => doc,
      invalidatesTags: (result, error, doc: { id: number }) => (error ? ['Doc'] : [{ type: 'Doc', id: doc.id }]),
    },
  },
)

function describe(event: LivecacheEvent<Message[]>): string {
  switch (event.type) {
    case 'snapshot':
      return `${event.key} v${event.version}: ${event.data.length} messages`
    case 'patch':
      return `${event.from}→${event.version}: ${event.patches.map((p: PatchOperation) => p.op).join(',')}`
    case 'status':
      return `${event.status} ${JSON.stringify(event.error ?? null)}`
    case 'stream':
      return `${event.state} ${event.error ?? ''}`
    case 'error':
      return `${event.reason}: ${event.message}`
    case 'removed':
      return 'removed'
  }
}

async function main(): Promise<void> {
  const sub = client.subscribe<Message[]>('getMessages', 'redux', (event) => console.log(describe(event)))
  const key: string = sub.key
  const messages: Message[] = await sub.loaded()
  const snap: EntryState<Message[]> = sub.snapshot()
  for await (const ev of sub.events()) {
    if (ev.type === 'patch') break
  }
  const { patches, inversePatches, undo } = client.updateQueryData<Message[]>('getMessages', 'redux', (draft) => {
    draft.push({ id: 1, channel: 'redux', text: 'hi' })
  })
  undo()
  client.patchQueryData('getMessages', 'redux', [...patches, ...inversePatches])
  client.upsertQueryData('getDoc', 1, { id: 1, title: 't' })
  client.refetch('getDoc', 1)
  client.pushMessage('getMessages', 'redux', { id: 2, channel: 'redux', text: 'x' })
  client.pushMessageText('getMessages', 'redux', '{"id":3}')
  const stats: Stats = client.stats()
  console.log(key, messages.length, snap.status, stats.entries, stats.messagesRejected.schema)
  sub.unsubscribe()
  try {
    await sub.loaded()
  } catch (e) {
    if (e instanceof CacheEntryRemoved || (e instanceof LivecacheError && e.code === 'NotFound')) console.log(e.message)
  }
  await client.close()
}

void main()
