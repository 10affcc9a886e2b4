"""Source adapters: a vendor's own records (files, webhooks) turned into contract events.

Pure translation: these modules import only `pipeline.contract` and `pipeline.core`; reading files, following
logs, serving webhooks and producing to Kafka belong to the tools and the runtime.
"""
