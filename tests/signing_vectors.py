"""FlexCharge's webhook signature test vectors (the official sample's, and a second one)."""

from __future__ import annotations

OFFICIAL = {
    "key": "XRmKBxG5uvt1qWzqvp+T6CAbTo0MB89GTxXZD5cHA56RP7Mj4NbnHQOR1Y8uorUU9YQz8ujaVRUdm9vTSkPZSw==",
    "host": "fctestwebhook.free.beeceptor.com",
    "nonce": "5f1c2de28a76457c9cb79d1740f2260a",
    "date": "Mon, 20 Mar 2023 17:16:40 GMT",
    "body": (
        b'{"Event":"order.completed","TimeStamp":"2023-03-20T17:16:40.898703Z","EventData":null,'
        b'"ExternalOrderId":"a9735210-1349-49bf-bfde-b737dd07872a",'
        b'"OrderId":"ac9674ed-cbfe-49aa-bc8b-eb1d2b74c429","ConfirmationId":"22ACD1D9",'
        b'"IsTestMode":true,"IsResent":false}'
    ),
    "content_sha512": "pLs0Op5VWqQM3ZIumqC2NP6MDqcnwFN1znp/oCuw9LcYd8PtvLC8ProyPg8ZDadsRc36NskT3QGKn/PkNqwWfg==",
    "signature": "+HXN8ZewgINLk+uC/UI92HSWmLK7gZOECPxOGEM91ATyfyzScMF/+osEK5B0UjO7OFqahDvesSo8jmUWMZtQnA==",
    "body_signature": "SbzcEwAKsViWqrB8+suZMjOdadswbUjLHtIKjDQJYle31xbB8Vr0pVTDaNP28/y+NDynpyFyKKnXmWZy8uJVig==",
}


SECOND = {
    "key": "ZW11bGF0b3ItdGVzdC1zdWJzY3JpYmVyLWtleS0wMDAxZW11bGF0b3ItdGVzdC1zdWJzY3JpYmVyLWtleS0wMDAx",
    "host": "billing.example.test",
    "nonce": "0123456789abcdef0123456789abcdef",
    "date": "Sat, 01 Jun 2024 12:00:00 GMT",
    "body": (
        b'{"Event":"order.expired","TimeStamp":"2024-06-01T12:00:00.000000Z","EventData":null,'
        b'"ExternalOrderId":"INV-1001","OrderId":"3f0c1e7a-1111-4a2b-9c3d-000000000001",'
        b'"ConfirmationId":null,"IsTestMode":true,"IsResent":false}'
    ),
    "content_sha512": "6DDobY1jLH/kYy/Pp5Iv6dw4aX/QFgPxTxuVIpVSPF6Bw3WCbEBT6TfegAChJrlfcn8251tRz8YCqrvXJ7asuQ==",
    "signature": "qWi4cdcHZI/einGcQWiqJcqLedopM37K/JRMmycGBlfCBcTGYAv/Q5WgyVl3sCYvUnQHQ9HPIsMWsackdqMuUA==",
    "body_signature": "Qoq3wf2LFwLZvKhw4QjXLTQ9zcT9oS2qdVAwv2rs5NQ4qEjxX9cw/obhJv2j+5cALuOgmYb1UzlKS8WRH0BdXw==",
}


OTHER_KEY = "b3RoZXIta2V5LW5vdC11c2VkLWJ5LWZsZXhjaGFyZ2UtMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMA=="
