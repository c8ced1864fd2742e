-- tie_sign(difference): a scalar macro, the sign of a difference of two metric values with
-- differences within 1e-9 counted as ties: 1, -1 or 0. Used by kendall_tau_b.
create or replace macro tie_sign(difference) as
case
    when difference > 1e-9 then 1
    when difference < -1e-9 then -1
    else 0
end
