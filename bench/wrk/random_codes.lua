-- wrk: GET /c1 ... /c10000, a code drawn at random for each request.
math.randomseed(os.time())
request = function()
    return wrk.format("GET", "/c" .. math.random(1, 10000))
end
