-- wrk script: POST a webhook-sized JSON body (the receiver's own request rate)
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Casegrid-Event"] = "case.registered"
wrk.headers["X-Casegrid-Delivery"] = "0"
wrk.body = '{"id":0,"type":"case.registered","at":"2026-12-07T12:00:00+08:00","case":{"id":1,"case_no":"CG20260000001","status":"registered","category_code":"0599","category":"社会生活噪音","address":"滕州市龙泉街道","community_code":"370481002001"},"data":{},"recipients":["supervisor"]}'
