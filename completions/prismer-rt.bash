_prismer_rt_completion() {
    local IFS=$'
'
    COMPREPLY=( $( env COMP_WORDS="${COMP_WORDS[*]}" \
                   COMP_CWORD=$COMP_CWORD \
                   _PRISMER_RT_COMPLETE=complete_bash $1 ) )
    return 0
}

complete -o default -F _prismer_rt_completion prismer-rt
