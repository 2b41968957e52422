-- wrk script: creates a distinct Mobivate contact per request.
local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sandbox-key"
request = function()
  n = n + 1
  local msisdn = string.format("3361%07d", n)
  local body = string.format('{"alias":"+%s","msisdn":"%s","meta":{"FIRSTNAME":"Bench"}}', msisdn, msisdn)
  return wrk.format(nil, "/addressbook/contacts", nil, body)
end
